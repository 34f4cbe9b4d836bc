// natpass web admin, end to end in a real browser (Debian's chromium, driven by
// playwright-core; no browser download).
//
//   node admin.mjs BASE_URL USER PASSWORD ACTION [SCREENSHOT_DIR]
//
// ACTION:
//   disable-pptp | enable-pptp   log in, open VPN > VPN Passthrough from the menu, set PPTP
//                                to Disable/Enable, Save, and check the confirmation and the
//                                radio buttons after the reload
//   screenshots                  log in and save a screenshot of every page (desktop, and the
//                                passthrough page at phone size)
// Exits non-zero, with the reason, when a step fails.
import { chromium } from 'playwright-core';

const [base, user, password, action, shots] = process.argv.slice(2);
if (!base || !user || !password || !action) {
  console.error('usage: node admin.mjs BASE_URL USER PASSWORD ACTION [SCREENSHOT_DIR]');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const fail = async (msg) => { console.error(`FAIL: ${msg}`); await browser.close(); process.exit(1); };

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  await page.goto(`${base}/login`);
  if (shots) await page.screenshot({ path: `${shots}/login.png`, fullPage: true });
  await page.fill('#user', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL('**/status'), page.click('button[type=submit]')]);
  if (!(await page.textContent('h1')).includes('Status')) await fail('no Status page after login');

  if (action === 'disable-pptp' || action === 'enable-pptp') {
    const want = action === 'disable-pptp' ? 'disable' : 'enable';
    await Promise.all([page.waitForURL('**/vpn/passthrough'), page.click('nav >> text=VPN Passthrough')]);
    await page.check(`#pptp-${want}`);
    await Promise.all([page.waitForURL('**/vpn/passthrough?saved=*'), page.click('button:has-text("Save")')]);
    const notice = await page.textContent('.notice.ok');
    if (!notice || !notice.includes('Settings saved and applied')) await fail(`no confirmation: ${notice}`);
    if (!(await page.isChecked(`#pptp-${want}`))) await fail(`PPTP is not "${want}" after saving`);
    if (!(await page.isChecked('#ipsec-enable')) || !(await page.isChecked('#l2tp-enable'))) {
      await fail('saving PPTP changed another switch');
    }
    console.log(`ok: PPTP passthrough ${want}d (${notice.trim()})`);
    if (shots) await page.screenshot({ path: `${shots}/vpn-passthrough-${want}d.png`, fullPage: true });
  } else if (action === 'screenshots') {
    for (const [path, name] of [['/status', 'status'], ['/vpn/passthrough', 'vpn-passthrough'],
      ['/vpn/tunnels', 'vpn-tunnels'], ['/sessions', 'nat-sessions'], ['/settings', 'settings']]) {
      await page.goto(`${base}${path}`);
      await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
    }
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/vpn/passthrough`);
    await page.screenshot({ path: `${shots}/vpn-passthrough-phone.png`, fullPage: true });
    console.log(`ok: screenshots in ${shots}`);
  } else {
    await fail(`unknown action ${action}`);
  }
  await browser.close();
} catch (e) {
  await fail(e.message);
}
