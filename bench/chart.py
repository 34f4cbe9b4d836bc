#!/usr/bin/python3
"""Draws UDP packets per second against flows from bench/netns.sh result CSVs: the median of
each router at each flow count, with the min-max range as error bars.

  bench/chart.py OUT.svg RESULTS.csv [RESULTS.csv ...]

Routers: Linux nftables masquerade (`nat`), the harness's C AF_XDP forwarder without NAT
(`xsk`, when the run had XSK=1), and natpass on each backend (`ext` rows, by their tag
natpass-<backend>-<commit>). Needs Debian's python3-matplotlib.
"""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "nat": "Linux nftables masquerade",
    "xsk": "C AF_XDP forwarder, no NAT (harness baseline)",
    "af_packet": "natpass, AF_PACKET",
    "af_xdp": "natpass, AF_XDP",
    "af_xdp_busy": "natpass, AF_XDP + busy polling",
}


def router(row):
    if row["mode"] != "ext":
        return row["mode"]
    tag = row["tag"]
    return tag[len("natpass-"):].rsplit("-", 1)[0] if tag.startswith("natpass-") else tag


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, paths = sys.argv[1], sys.argv[2:]
    values = defaultdict(list)
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["test"] == "udp" and row["unit"] == "pps":
                    values[(router(row), int(row["param"]))].append(float(row["value"]))
    if not values:
        print("no UDP rows in " + " ".join(paths), file=sys.stderr)
        return 1
    matplotlib.rcParams["svg.fonttype"] = "none"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in [n for n in LABELS if any(k[0] == n for k in values)]:
        flows = sorted(f for (r, f) in values if r == name)
        med = [statistics.median(values[(name, f)]) / 1000 for f in flows]
        low = [m - min(values[(name, f)]) / 1000 for m, f in zip(med, flows)]
        high = [max(values[(name, f)]) / 1000 - m for m, f in zip(med, flows)]
        style = "--" if name in ("nat", "xsk") else "-"
        ax.errorbar(flows, med, yerr=[low, high], fmt="o" + style, capsize=3, label=LABELS[name])
    ax.set_xscale("log")
    ax.set_xlabel("UDP flows (64-byte payload)")
    ax.set_ylabel("forwarded, kpps (median, min-max)")
    ax.set_ylim(bottom=0)
    ax.set_title("Packets per second against flows, one interleaved run (2-vCPU VM, veth)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
