//! The control plane's HTTP input layer on arbitrary bytes: whatever a client sends on one
//! connection (request line, headers, body, several requests kept alive, TLS-less garbage)
//! goes through the real server (hyper with the admin's limits, the Host and Origin checks,
//! the body limits, the cookie, query and form decoders, the routes and the login form)
//! against a data plane answering on a thread of its own. It never panics, and every answer
//! is HTTP (1.1, or 1.0 to a 1.0 request).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use natpass_control::auth::{Auth, token_digest};
use natpass_control::http::{Limits, Options, Shared, serve_connection};
use natpass_control::interface::{self, EventLog, PlaneInfo};
use natpass_control::server::Control;
use natpass_control::store::ConfigStore;
use natpass_engine::{Engine, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CONFIG: &str = "[nat]\nlan_networks = [\"192.168.1.0/24\"]\n";
/// A user whose hash is cheap to check (argon2id, 8 KiB, 1 pass), so logins do not slow the
/// fuzzer down; the server treats it like any other.
const USER_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$Zk3MSKFH4Mt8R1XGpaqIcQ";

struct World {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let config = natpass_config::parse_config(CONFIG).expect("config");
        let mut engine = Engine::new(config.engine, Instant::ZERO).expect("engine");
        let (handle, mailbox) = interface::channel();
        std::thread::spawn(move || {
            let mut events = EventLog::default();
            loop {
                mailbox.serve(|cmd| {
                    interface::answer(&mut engine, &PlaneInfo::default(), &mut events, Instant::from_secs(1), cmd)
                });
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let users = vec![natpass_config::User { name: "admin".into(), password_hash: USER_HASH.into() }];
        let auth = Auth::new(users, vec![token_digest("fuzz-token")], Duration::from_secs(600)).expect("random");
        let control =
            Control::new(handle, ConfigStore::new(None, CONFIG.into()), auth, |_| {}).expect("password checkers");
        let limits = Limits {
            header_timeout: Duration::from_millis(200),
            body_timeout: Duration::from_millis(200),
            handler_timeout: Duration::from_secs(3),
            ..Limits::default()
        };
        let listen = "127.0.0.1:8080".parse().expect("address");
        let shared = Arc::new(Shared::new(control, listen, Options { limits, ..Options::default() }));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        World { rt, shared }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let peer = "127.0.0.1:40000".parse().expect("address");
        let conn = tokio::spawn(serve_connection(Arc::clone(&w.shared), server, peer));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the server held a closed connection for 10 s");
        let _ = conn.await;
        assert!(answer.is_empty() || answer.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(&answer));
    });
});
