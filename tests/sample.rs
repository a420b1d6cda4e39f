//! Integration tests of mb-sample: the real binary over fake /proc and /sys
//! trees (tests/fixtures/sample/base), run in pairs and sequences with
//! hand-computed expectations for the edge cases of the research note
//! (shared/research/sampling.md, section 5.6).
//!
//! The base tree, as every test starts from it:
//! - uptime 100000.00 s, boot id 1111..., btime 1795800000, 2 CPUs;
//! - cpu: user 1000000 nice 20000 system 300000 idle 18500000 iowait 50000
//!   irq 10000 softirq 20000 steal 100000 guest 100000 guest_nice 0, so
//!   busy = 1000000+20000+300000+10000+20000 = 1350000 and
//!   total = busy + 18500000+50000+100000 = 20000000 (= 2 CPUs x 100 Hz x 100000 s);
//! - meminfo: MemTotal 4000000 kB, MemAvailable 3000000 kB, so used =
//!   1000000 kB = 1024000000 B of 4096000000 B = 25 %;
//! - net/dev: lo, eth0 (physical, ifindex 2, rx 5000000000 / tx 800000000),
//!   docker0 and veth1a2b (virtual);
//! - mountinfo + statvfs.tsv: / (ext4 253:1, 4096 x 1000000 blocks, bfree
//!   600000, bavail 550000), /srv/bind (same device, skipped), /data
//!   (btrfs 0:40, 4096 x 500000, bfree 100000), /home (same btrfs, skipped),
//!   /mnt/empty (0 blocks, skipped), "/mnt/my disk" (1024 x 1000, bfree
//!   500), and tmpfs/overlay/squashfs/proc/sysfs/devtmpfs/cgroup2 (excluded).
//!   used = 400000x4096 + 400000x4096 + 500x1024 = 3277312000,
//!   size = 1000000x4096 + 500000x4096 + 1000x1024 = 6145024000.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::{json, Value};

use crate::util::{assert_code, fixture, stderr, stdout, Env, NOW};

const BOOT: &str = "11111111-1111-4111-8111-111111111111";
const BOOT2: &str = "22222222-2222-4222-8222-222222222222";

/// The cpu line 300 s after the base one, used by several tests:
/// user +9000 (of which guest +6000), system +1500, idle +48000, iowait
/// +300, irq +100, softirq +200, steal +900, nice +0.
const CPU300: &str = "cpu  1009000 20000 301500 18548000 50300 10100 20200 100900 106000 0";

/// A copy of the base tree in a fresh test environment.
struct Tree {
    env: Env,
    root: PathBuf,
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

impl Tree {
    fn new() -> Tree {
        let env = Env::new();
        let root = env.path("root");
        copy_tree(&fixture("sample/base"), &root);
        Tree { env, root }
    }

    fn state(&self) -> PathBuf {
        self.env.path("state/sample.state")
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.p(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn uptime(&self, secs: &str) {
        self.write("proc/uptime", &format!("{secs} 1.00\n"));
    }

    /// Replace the cpu lines of /proc/stat (util::set_stat_cpu).
    fn cpu(&self, line: &str) {
        crate::util::set_stat_cpu(&self.p("proc/stat"), line);
    }

    /// Replace the whole of /proc/stat.
    fn stat(&self, text: &str) {
        self.write("proc/stat", text);
    }

    /// Replace /proc/net/dev's interfaces: (name, rx bytes, rx packets, tx bytes, tx packets).
    fn net(&self, ifaces: &[(&str, u64, u64, u64, u64)]) {
        let mut t = String::from(
            "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
        );
        for (n, rb, rp, tb, tp) in ifaces {
            t.push_str(&format!(
                "{n:>6}: {rb} {rp} 0 0 0 0 0 0 {tb} {tp} 0 0 0 0 0 0\n"
            ));
        }
        self.write("proc/net/dev", &t);
    }

    /// A physical interface in sysfs with this ifindex.
    fn phys(&self, name: &str, ifindex: u64) {
        let dev = format!("sys/devices/pci0000:00/0000:00:04.0/virtio9/net/{name}");
        self.write(&format!("{dev}/ifindex"), &format!("{ifindex}\n"));
        let link = self.p(&format!("sys/class/net/{name}"));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("../../{dev}").replace("sys/", ""), link).unwrap();
    }

    fn args(&self) -> Vec<String> {
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            "--proc-root".into(),
            s(self.p("proc")),
            "--sys-root".into(),
            s(self.p("sys")),
            "--statvfs-fixture".into(),
            s(self.p("statvfs.tsv")),
            "--state".into(),
            s(self.state()),
            "--customer".into(),
            "acme".into(),
            "--vm".into(),
            "vm-1".into(),
        ]
    }

    /// Run at wall-clock `now` with extra arguments.
    fn run_at(&self, now: &str, extra: &[&str]) -> Output {
        let mut c = self.env.cmd("mb-sample");
        c.env("MB_NOW", now).args(self.args()).args(extra);
        crate::util::run_cmd(&mut c, "")
    }

    /// Run at `now`, expect exit 0 and one line; return it parsed.
    #[track_caller]
    fn sample_at(&self, now: &str) -> Value {
        let o = self.run_at(now, &[]);
        assert_code(&o, 0);
        line(&o)
    }

    fn state_json(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.state()).unwrap()).unwrap()
    }
}

/// The one line of a run, parsed; also checks the exact key set and order.
#[track_caller]
fn line(o: &Output) -> Value {
    let text = stdout(o);
    assert_eq!(text.matches('\n').count(), 1, "one line expected: {text:?}");
    assert!(text.ends_with('\n'));
    let v: Value = serde_json::from_str(text.trim_end()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "boot_id",
            "clk_tck",
            "cpu_busy_ticks",
            "cpu_busy_ticks_cum",
            "cpu_percent",
            "cpu_total_ticks",
            "cpu_total_ticks_cum",
            "customer_id",
            "disk_total_bytes",
            "disk_used_bytes",
            "errors",
            "flags",
            "id",
            "interval_seconds",
            "kind",
            "memory_percent",
            "memory_total_bytes",
            "memory_used_bytes",
            "ncpu",
            "net_in_bytes",
            "net_in_bytes_cum",
            "net_out_bytes",
            "net_out_bytes_cum",
            "seq",
            "status",
            "ts",
            "v",
            "vm_id"
        ],
        "key set (serde_json sorts keys)"
    );
    v
}

/// Pick some fields of a line into an object, for one-assert comparisons.
fn pick(v: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), v[*k].clone()))
            .collect(),
    )
}

const CPU_KEYS: &[&str] = &[
    "cpu_busy_ticks",
    "cpu_total_ticks",
    "cpu_percent",
    "cpu_busy_ticks_cum",
    "cpu_total_ticks_cum",
    "flags",
];
const NET_KEYS: &[&str] = &[
    "net_in_bytes",
    "net_out_bytes",
    "net_in_bytes_cum",
    "net_out_bytes_cum",
    "flags",
];

const T300: &str = "2026-11-28T12:05:00Z";

#[test]
fn first_run_emits_gauges_and_writes_state() {
    let t = Tree::new();
    let v = t.sample_at(NOW);
    assert_eq!(
        v,
        json!({
            "v": 1, "kind": "resource",
            "id": format!("vm-1:{BOOT}:100000000"),
            "ts": NOW, "customer_id": "acme", "vm_id": "vm-1",
            "interval_seconds": null, "status": "first", "flags": [], "boot_id": BOOT, "seq": 1,
            "cpu_percent": null, "cpu_busy_ticks": null, "cpu_total_ticks": null,
            "ncpu": 2, "clk_tck": v["clk_tck"].clone(),
            "memory_percent": 25.0, "memory_used_bytes": 1_024_000_000u64, "memory_total_bytes": 4_096_000_000u64,
            "disk_used_bytes": 3_277_312_000u64, "disk_total_bytes": 6_145_024_000u64,
            "net_in_bytes": null, "net_out_bytes": null,
            "cpu_busy_ticks_cum": 1_350_000, "cpu_total_ticks_cum": 20_000_000,
            "net_in_bytes_cum": 5_000_000_000u64, "net_out_bytes_cum": 800_000_000,
            "errors": []
        })
    );
    let st = t.state_json();
    assert_eq!(st["seq"], 1);
    assert_eq!(st["uptime_cs"], 10_000_000);
    assert_eq!(st["boot_id"], BOOT);
    assert!(t.env.path("state/sample.state.lock").exists());
}

#[test]
fn normal_interval_guest_not_counted_twice() {
    let t = Tree::new();
    t.sample_at(NOW);
    t.uptime("100300.00");
    t.cpu(CPU300);
    // eth0 +300000000 / +40000000; lo and docker0 move too but are virtual.
    t.net(&[
        ("lo", 600_000, 6000, 600_000, 6000),
        ("eth0", 5_300_000_000, 4_200_000, 840_000_000, 2_100_000),
        ("docker0", 970_000, 1700, 990_000, 1900),
        ("veth1a2b", 90_000, 900, 70_000, 700),
    ]);
    let v = t.sample_at(T300);
    // busy = 9000+0+1500+100+200 = 10800; total = 10800+48000+300+900 = 60000
    // (guest +6000 is inside user: adding it would give 16800/66000 = 25.45 %).
    // cum: 1350000+10800 = 1360800, 20000000+60000 = 20060000.
    assert_eq!(
        pick(&v, CPU_KEYS),
        json!({"cpu_busy_ticks": 10800, "cpu_total_ticks": 60000, "cpu_percent": 18.0,
               "cpu_busy_ticks_cum": 1_360_800, "cpu_total_ticks_cum": 20_060_000, "flags": []})
    );
    assert_eq!(
        pick(&v, NET_KEYS),
        json!({"net_in_bytes": 300_000_000, "net_out_bytes": 40_000_000,
               "net_in_bytes_cum": 5_300_000_000u64, "net_out_bytes_cum": 840_000_000, "flags": []})
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(v["interval_seconds"], 300.0);
    assert_eq!(v["seq"], 2);
    assert_eq!(v["id"], format!("vm-1:{BOOT}:100300000"));
    assert_eq!(t.state_json()["seq"], 2);
}

#[test]
fn old_kernel_short_cpu_lines() {
    // 4 columns (2.4 kernels): iowait, irq, softirq, steal, guest all 0.
    let t = Tree::new();
    t.cpu("cpu 1000000 20000 300000 18680000");
    let v = t.sample_at(NOW);
    // busy = 1000000+20000+300000 = 1320000; total = busy+18680000 = 20000000
    assert_eq!(v["cpu_busy_ticks_cum"], 1_320_000);
    assert_eq!(v["cpu_total_ticks_cum"], 20_000_000);
    t.uptime("100300.00");
    t.cpu("cpu 1006000 20000 303000 18731000");
    let v = t.sample_at(T300);
    // busy = 6000+3000 = 9000; total = 9000+51000 = 60000 -> 15 %
    assert_eq!(
        pick(&v, &CPU_KEYS[..3]),
        json!({"cpu_busy_ticks": 9000, "cpu_total_ticks": 60000, "cpu_percent": 15.0})
    );

    // 7 columns (no steal, no guest).
    let t = Tree::new();
    t.cpu("cpu 1000000 20000 300000 18600000 50000 10000 20000");
    t.sample_at(NOW);
    t.uptime("100300.00");
    t.cpu("cpu 1012000 20000 303000 18645000 50000 10000 20000");
    let v = t.sample_at(T300);
    // busy = 12000+3000 = 15000; total = 15000+45000 = 60000 -> 25 %
    assert_eq!(
        pick(&v, &CPU_KEYS[..3]),
        json!({"cpu_busy_ticks": 15000, "cpu_total_ticks": 60000, "cpu_percent": 25.0})
    );
    assert_eq!(v["flags"], json!([]));
}

#[test]
fn iowait_going_back_is_corrected_as_sar_does() {
    let t = Tree::new();
    t.sample_at(NOW);
    t.uptime("100300.00");
    // iowait 50000 -> 49000 (back 500 on each CPU) while idle +48300.
    t.cpu("cpu  1009000 20000 301500 18548300 49000 10100 20200 100900 106000 0");
    let v = t.sample_at(T300);
    // rd_stats.c get_per_cpu_interval(): idle went forward, so this is
    // iowait accounting noise: previous iowait := current, d_iowait = 0.
    // busy 10800, total 10800+48300+0+900 = 60000. The ticks are right:
    // an informational flag, not cpu_counter_backwards.
    assert_eq!(
        pick(&v, CPU_KEYS),
        json!({"cpu_busy_ticks": 10800, "cpu_total_ticks": 60000, "cpu_percent": 18.0,
               "cpu_busy_ticks_cum": 1_360_800, "cpu_total_ticks_cum": 20_060_000,
               "flags": ["cpu_iowait_backwards"]})
    );
}

#[test]
fn broken_steal_is_flagged_not_fixed() {
    let t = Tree::new();
    t.sample_at(NOW);
    t.uptime("100300.00");
    // steal drops to 0 (sysstat #95, psutil #1210); user +3000, idle +48000.
    t.cpu("cpu  1003000 20000 300000 18548000 50000 10000 20000 0 100000 0");
    let v = t.sample_at(T300);
    // Per CPU: (1500 + 24000) - 50000 < 0. sar's unsigned arithmetic would
    // wrap that into 2^64 - 24500 ticks; we count the CPU as 0 and flag
    // it. Busy is capped at the total (0); expected total 2x100x300 =
    // 60000: mismatch flagged. Reports leave the interval out.
    assert_eq!(
        pick(&v, CPU_KEYS),
        json!({"cpu_busy_ticks": 0, "cpu_total_ticks": 0, "cpu_percent": null,
               "cpu_busy_ticks_cum": 1_350_000, "cpu_total_ticks_cum": 20_000_000,
               "flags": ["cpu_counter_backwards", "cpu_total_mismatch"]})
    );
}

#[test]
fn old_state_without_per_cpu_lines_uses_the_aggregate_once() {
    let t = Tree::new();
    t.sample_at(NOW);
    // A state written by an mb-sample that kept only the aggregate line.
    let mut st = t.state_json();
    st["cpu"].as_object_mut().unwrap().remove("per_cpu");
    fs::write(t.state(), st.to_string()).unwrap();
    t.uptime("100300.00");
    t.cpu(CPU300);
    let v = t.sample_at(T300);
    // busy 9000+1500+100+200 = 10800 of 60000 (CPU300's doc).
    assert_eq!(
        pick(&v, &CPU_KEYS[..3]),
        json!({"cpu_busy_ticks": 10800,
        "cpu_total_ticks": 60000, "cpu_percent": 18.0})
    );
    assert_eq!(
        t.state_json()["cpu"]["per_cpu"].as_array().map(Vec::len),
        Some(2)
    );
}

/// One of the /proc/stat snapshots in tests/fixtures/sample/sysstat.
fn sysstat_stat(name: &str) -> String {
    fs::read_to_string(fixture("sample/sysstat").join(name)).unwrap()
}

#[test]
fn cpu_hotplug_matches_sar_on_sysstat_snapshots() {
    // sysstat's tests/root1..root4 /proc/stat (fixture README): what
    // `sar -u` prints for each interval, computed with
    // get_global_cpu_statistics() / get_per_cpu_interval() (sa_common.c,
    // rd_stats.c) as written out below; mb-sample must give the same
    // %user + %nice + %system as cpu_percent.
    let t = Tree::new();
    let run = |root: &str, uptime: &str| {
        t.stat(&sysstat_stat(root));
        t.uptime(uptime);
        let v = t.sample_at(NOW);
        pick(
            &v,
            &[
                "cpu_busy_ticks",
                "cpu_total_ticks",
                "cpu_percent",
                "ncpu",
                "flags",
            ],
        )
    };
    run("root1.stat", "7192.55");
    // root1 -> root2: cpu8 goes offline and is frozen at its root1 values
    // (adds 0); the 8 others' column deltas (sum of current - sum of
    // previous): user 533, nice 3105, system 456, idle 20591, iowait 29,
    // irq 84, softirq 46, steal 0; interval = 24844 (their sum).
    // sar -u: %user 2.15 %nice 12.50 %system 2.36 %iowait 0.12 %idle 82.88;
    // busy = 533+3105+(456+84+46) = 4224 -> 17.00 %.
    assert_eq!(
        run("root2.stat", "7223.59"),
        json!({"cpu_busy_ticks": 4224, "cpu_total_ticks": 24844, "cpu_percent": 17.0,
               "ncpu": 8, "flags": ["cpu_hotplug"]})
    );
    // root2 -> root3: cpu6 goes offline too (frozen); cpu8 stays frozen;
    // cpu7's iowait goes back 7294 -> 7293 while its idle goes forward:
    // iowait noise, previous iowait := 7293. Deltas: user 427, nice 0,
    // system 289, idle 17823, iowait 90, irq 35, softirq 36; interval 18700.
    // sar -u: %user 2.28 %nice 0.00 %system 1.93 %iowait 0.48 %idle 95.31;
    // busy 427+0+360 = 787 -> 4.21 %. (The aggregate line's idle goes back
    // 3638469 -> 2947795 here: mb-sample used to clamp it and print
    // 100.00 %.) cpu3 does not move at all in upstream's data, so 18700 is
    // below 7 CPUs x 3117 ticks minus the tolerance: cpu_total_mismatch.
    assert_eq!(
        run("root3.stat", "7254.76"),
        json!({"cpu_busy_ticks": 787, "cpu_total_ticks": 18700, "cpu_percent": 4.21,
               "ncpu": 7,
               "flags": ["cpu_hotplug", "cpu_iowait_backwards", "cpu_total_mismatch"]})
    );
    // root3 -> root4: cpu8 is back, its idle 711404 -> 103 and iowait
    // 2605 -> 0 restarted from 0 (previous idle and iowait := 0, compared
    // with its frozen root1 values); cpu6 still frozen. Deltas: user 805,
    // nice 6947, system 538, idle 21577, iowait 52, irq 98, softirq 85;
    // interval 30102. sar -u: %user 2.67 %nice 23.08 %system 2.40
    // %iowait 0.17 %idle 71.68; busy 805+6947+721 = 8473 -> 28.15 %.
    assert_eq!(
        run("root4.stat", "7293.14"),
        json!({"cpu_busy_ticks": 8473, "cpu_total_ticks": 30102, "cpu_percent": 28.15,
               "ncpu": 8, "flags": ["cpu_hotplug"]})
    );
}

#[test]
fn nine_vcpu_vm_with_one_cpu_going_offline() {
    // fixture README: 9 vCPUs, 300 s at 100 Hz; cpu8 goes offline. Each
    // of cpu0..cpu7: user +2000, system +694, idle +27306 = 30000 ticks.
    // sar: interval 8 x 30000 = 240000 (cpu8 frozen, adds 0), busy
    // 8 x 2694 = 21552 -> %user 6.67 + %system 2.31 = 8.98 %, %idle 91.02.
    // The aggregate line's idle drops by 81552 (8 x 27306 - 300000), which
    // mb-sample used to clamp to 0: 21552 / 21552 = 100.00 %.
    let t = Tree::new();
    t.stat(&sysstat_stat("nine-a.stat"));
    t.sample_at(NOW);
    t.stat(&sysstat_stat("nine-b.stat"));
    t.uptime("100300.00");
    let v = t.sample_at(T300);
    assert_eq!(
        pick(
            &v,
            &[
                "cpu_busy_ticks",
                "cpu_total_ticks",
                "cpu_percent",
                "ncpu",
                "flags"
            ]
        ),
        json!({"cpu_busy_ticks": 21552, "cpu_total_ticks": 240000, "cpu_percent": 8.98,
               "ncpu": 8, "flags": ["cpu_hotplug"]})
    );
    // cpu8 stays in the state at its last values, to be compared with
    // when it comes back.
    let st = t.state_json();
    let cpus = st["cpu"]["per_cpu"].as_array().unwrap();
    assert_eq!(cpus.len(), 9);
    assert_eq!(
        cpus[8],
        json!({"id": 8, "ticks": [5000, 0, 2000, 800000, 1000, 0, 100, 0, 0, 0]})
    );
}

#[test]
fn zero_total_gives_null_percent() {
    let t = Tree::new();
    t.sample_at(NOW);
    // Same tick: nothing changed, not even uptime.
    let v = t.sample_at(NOW);
    // The id still differs from the first line's (...:100000000): + 1 ms.
    assert_eq!(v["id"], format!("vm-1:{BOOT}:100000001"));
    assert_eq!(
        pick(
            &v,
            &[
                "cpu_busy_ticks",
                "cpu_total_ticks",
                "cpu_percent",
                "interval_seconds",
                "net_in_bytes",
                "flags",
                "status"
            ]
        ),
        json!({"cpu_busy_ticks": 0, "cpu_total_ticks": 0, "cpu_percent": null,
               "interval_seconds": 0.0, "net_in_bytes": 0, "flags": [], "status": "ok"})
    );
}

#[test]
fn reboot_deltas_are_since_boot() {
    let t = Tree::new();
    t.sample_at(NOW);
    t.write("proc/sys/kernel/random/boot_id", &format!("{BOOT2}\n"));
    t.uptime("200.00");
    // 2 CPUs x 100 Hz x 200 s = 40000 ticks: busy 10000+4000+200+300 = 14500,
    // total 14500 + idle 25000 + iowait 500 = 40000 -> 36.25 %.
    t.cpu("cpu  10000 0 4000 25000 500 200 300 0 0 0");
    let stat = fs::read_to_string(t.p("proc/stat"))
        .unwrap()
        .replace("btime 1795800000", "btime 1795890000");
    t.write("proc/stat", &stat);
    t.net(&[
        ("lo", 100, 1, 100, 1),
        ("eth0", 1_000_000, 1000, 200_000, 300),
    ]);
    let v = t.sample_at("2026-11-29T12:00:00Z");
    assert_eq!(
        pick(
            &v,
            &[
                "status",
                "interval_seconds",
                "boot_id",
                "seq",
                "id",
                "cpu_busy_ticks",
                "cpu_total_ticks",
                "cpu_percent",
                "cpu_busy_ticks_cum",
                "net_in_bytes",
                "net_out_bytes",
                "net_in_bytes_cum",
                "flags"
            ]
        ),
        json!({"status": "reboot", "interval_seconds": 200.0, "boot_id": BOOT2, "seq": 2,
               "id": format!("vm-1:{BOOT2}:200000"),
               "cpu_busy_ticks": 14500, "cpu_total_ticks": 40000, "cpu_percent": 36.25, "cpu_busy_ticks_cum": 14500,
               "net_in_bytes": 1_000_000, "net_out_bytes": 200_000, "net_in_bytes_cum": 1_000_000, "flags": []})
    );
}

#[test]
fn reboot_seen_by_boot_id_only() {
    // btime 10 s off (within NTP tolerance) and uptime *larger*: only the
    // boot id tells it is another boot (a restored snapshot, say).
    let t = Tree::new();
    t.sample_at(NOW);
    t.write("proc/sys/kernel/random/boot_id", &format!("{BOOT2}\n"));
    t.uptime("100600.00");
    let stat = fs::read_to_string(t.p("proc/stat"))
        .unwrap()
        .replace("btime 1795800000", "btime 1795800010");
    t.write("proc/stat", &stat);
    let v = t.sample_at("2026-11-28T12:10:00Z");
    // Deltas are the since-boot counters; total 20000000 vs expected
    // 2x100x100600 = 20120000 is within tolerance.
    assert_eq!(
        pick(
            &v,
            &[
                "status",
                "interval_seconds",
                "cpu_busy_ticks",
                "cpu_total_ticks",
                "cpu_percent",
                "net_in_bytes",
                "flags"
            ]
        ),
        json!({"status": "reboot", "interval_seconds": 100600.0, "cpu_busy_ticks": 1_350_000,
               "cpu_total_ticks": 20_000_000, "cpu_percent": 6.75, "net_in_bytes": 5_000_000_000u64, "flags": []})
    );
}

#[test]
fn btime_jitter_without_reboot() {
    let t = Tree::new();
    t.sample_at(NOW);
    t.uptime("100300.00");
    t.cpu(CPU300);
    let stat = fs::read_to_string(t.p("proc/stat"))
        .unwrap()
        .replace("btime 1795800000", "btime 1795800005");
    t.write("proc/stat", &stat);
    let v = t.sample_at(T300);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["cpu_busy_ticks"], 10800);

    // Without a boot id at all, btime within 15 s is still the same boot...
    let t = Tree::new();
    fs::remove_file(t.p("proc/sys/kernel/random/boot_id")).unwrap();
    let v = t.sample_at(NOW);
    assert_eq!(v["boot_id"], "btime-1795800000");
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    t.uptime("100300.00");
    t.cpu(CPU300);
    let stat = fs::read_to_string(t.p("proc/stat"))
        .unwrap()
        .replace("btime 1795800000", "btime 1795799995");
    t.write("proc/stat", &stat);
    let v = t.sample_at(T300);
    assert_eq!(
        (v["status"].as_str(), v["cpu_busy_ticks"].as_u64()),
        (Some("ok"), Some(10800))
    );
    // ...and 100 s is a reboot.
    t.uptime("100600.00");
    let stat = fs::read_to_string(t.p("proc/stat"))
        .unwrap()
        .replace("btime 1795799995", "btime 1795800100");
    t.write("proc/stat", &stat);
    let v = t.sample_at("2026-11-28T12:10:00Z");
    assert_eq!(v["status"], "reboot");
}

#[test]
fn clock_jumps_use_uptime_and_are_flagged() {
    for now in ["2026-11-28T13:05:00Z", "2026-11-28T11:05:00Z"] {
        let t = Tree::new();
        t.sample_at(NOW);
        t.uptime("100300.00");
        t.cpu(CPU300);
        let v = t.sample_at(now);
        assert_eq!(
            pick(
                &v,
                &[
                    "interval_seconds",
                    "cpu_busy_ticks",
                    "cpu_total_ticks",
                    "flags",
                    "ts"
                ]
            ),
            json!({"interval_seconds": 300.0, "cpu_busy_ticks": 10800, "cpu_total_ticks": 60000,
                   "flags": ["clock_jump"], "ts": now})
        );
    }
}

#[test]
fn long_gap_is_one_exact_delta() {
    let t = Tree::new();
    t.sample_at(NOW);
    // 3 h later (35 cron runs missed): 2x100x10800 = 2160000 ticks.
    t.uptime("110800.00");
    t.cpu("cpu  1216000 20000 300000 20444000 50000 10000 20000 100000 100000 0");
    t.net(&[
        ("lo", 500_000, 5000, 500_000, 5000),
        ("eth0", 6_000_000_000, 5_000_000, 900_000_000, 2_500_000),
    ]);
    let v = t.sample_at("2026-11-28T15:00:00Z");
    // busy 216000 / total 216000+1944000 = 2160000 -> 10 %
    assert_eq!(
        pick(
            &v,
            &[
                "interval_seconds",
                "cpu_busy_ticks",
                "cpu_total_ticks",
                "cpu_percent",
                "net_in_bytes",
                "net_out_bytes",
                "flags"
            ]
        ),
        json!({"interval_seconds": 10800.0, "cpu_busy_ticks": 216_000, "cpu_total_ticks": 2_160_000, "cpu_percent": 10.0,
               "net_in_bytes": 1_000_000_000, "net_out_bytes": 100_000_000, "flags": ["long_gap"]})
    );
}

/// First run on the base tree, then a second run 300 s later with `net`.
fn net_pair(net: &[(&str, u64, u64, u64, u64)], before: impl Fn(&Tree)) -> (Tree, Value) {
    let t = Tree::new();
    t.sample_at(NOW);
    t.uptime("100300.00");
    t.cpu(CPU300);
    t.net(net);
    before(&t);
    let v = t.sample_at(T300);
    (t, v)
}

const VIRT: [(&str, u64, u64, u64, u64); 3] = [
    ("lo", 500_000, 5000, 500_000, 5000),
    ("docker0", 70_000, 700, 90_000, 900),
    ("veth1a2b", 90_000, 900, 70_000, 700),
];

fn with_virt(
    eth: &[(&'static str, u64, u64, u64, u64)],
) -> Vec<(&'static str, u64, u64, u64, u64)> {
    let mut v = VIRT.to_vec();
    v.extend_from_slice(eth);
    v
}

#[test]
fn interface_counter_reset_is_no_phantom() {
    // eth0 rx 5 GB -> 1 MB: a reset, delta = 1 MB, never 2^32-sized.
    let (_, v) = net_pair(&with_virt(&[("eth0", 1_000_000, 900, 50_000, 60)]), |_| {});
    assert_eq!(
        pick(&v, NET_KEYS),
        json!({"net_in_bytes": 1_000_000, "net_out_bytes": 50_000,
               "net_in_bytes_cum": 5_001_000_000u64, "net_out_bytes_cum": 800_050_000, "flags": ["counter_reset"]})
    );
}

#[test]
fn interface_recreated_detected_by_ifindex() {
    // Re-created (ifindex 2 -> 7) and already past the old counter: the
    // whole counter is new traffic, not 6e9-5e9.
    let (_, v) = net_pair(
        &with_virt(&[("eth0", 6_000_000_000, 5_000_000, 900_000_000, 2_500_000)]),
        |t| t.phys("eth0", 7),
    );
    assert_eq!(
        pick(&v, NET_KEYS),
        json!({"net_in_bytes": 6_000_000_000u64, "net_out_bytes": 900_000_000,
               "net_in_bytes_cum": 11_000_000_000u64, "net_out_bytes_cum": 1_700_000_000, "flags": ["counter_reset"]})
    );
}

#[test]
fn near_32_bit_then_small_is_a_reset_not_a_wrap() {
    let t = Tree::new();
    t.net(&with_virt(&[("eth0", 4_294_967_000, 100, 10, 1)]));
    t.sample_at(NOW);
    t.uptime("100300.00");
    t.cpu(CPU300);
    t.net(&with_virt(&[("eth0", 1000, 3, 20, 2)]));
    let v = t.sample_at(T300);
    // A wrap guess would add 2^32-4294967000+1000 = 1296; we say 1000.
    // tx went forward (10 -> 20): only rx is reset, tx counts 10, not its
    // whole counter again.
    assert_eq!(v["net_in_bytes"], 1000);
    assert_eq!(v["net_out_bytes"], 10);
    assert_eq!(v["net_out_bytes_cum"], 20);
    assert_eq!(v["flags"], json!(["counter_reset"]));
}

#[test]
fn a_reset_of_one_direction_leaves_the_other_alone() {
    // eth0 rx 5 GB -> 2 MB (reset or 32-bit rx counter) while tx goes on
    // 800 MB -> 800.3 MB: tx is 300 kB, not 800.3 MB billed twice.
    let (_, v) = net_pair(
        &with_virt(&[("eth0", 2_000_000, 1500, 800_300_000, 2_000_000)]),
        |_| {},
    );
    assert_eq!(
        pick(&v, NET_KEYS),
        json!({"net_in_bytes": 2_000_000, "net_out_bytes": 300_000,
               "net_in_bytes_cum": 5_002_000_000u64, "net_out_bytes_cum": 800_300_000,
               "flags": ["counter_reset"]})
    );
}

#[test]
fn huge_counters_stay_exact_or_null() {
    // 2^53+1 must not lose its last digit through a float; u64::MAX does
    // not fit the contract's u63 and is written as null with an error.
    let t = Tree::new();
    t.net(&with_virt(&[(
        "eth0",
        9_007_199_254_740_993,
        1,
        18_446_744_073_709_551_615,
        1,
    )]));
    let o = t.run_at(NOW, &[]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("\"net_in_bytes_cum\":9007199254740993,"),
        "{}",
        stdout(&o)
    );
    let v = line(&o);
    assert_eq!(v["net_out_bytes_cum"], Value::Null);
    assert_eq!(
        v["errors"],
        json!(["net_out_bytes_cum: 18446744073709551615 is beyond the event contract's range (2^63-1); written as null"])
    );
    assert!(stderr(&o).contains("mb-sample: net_out_bytes_cum: 18446744073709551615"));
    // mb-ingest accepts it.
    let ing = t.env.run("mb-ingest", &[], &stdout(&o));
    assert_code(&ing, 0);
    assert_eq!(t.env.query("SELECT count(*) FROM resource_usage"), ["1"]);
}

#[test]
fn new_vanished_and_renamed_interfaces() {
    // eth1 appears (physical, ifindex 5): created since the last run, so
    // its whole counter is new traffic.
    let (t, v) = net_pair(
        &with_virt(&[
            ("eth0", 5_000_001_000, 4_000_010, 800_000_100, 2_000_001),
            ("eth1", 7000, 70, 3000, 30),
        ]),
        |t| t.phys("eth1", 5),
    );
    // in = 1000 + 7000 = 8000; out = 100 + 3000 = 3100
    assert_eq!(
        pick(&v, NET_KEYS),
        json!({"net_in_bytes": 8000, "net_out_bytes": 3100,
               "net_in_bytes_cum": 5_000_008_000u64, "net_out_bytes_cum": 800_003_100, "flags": ["iface_new"]})
    );
    // eth1 vanishes; eth0 is renamed ens3 (same ifindex 2) and keeps counting.
    t.uptime("100600.00");
    t.cpu("cpu  1018000 20000 303000 18596000 50600 10200 20400 101800 112000 0");
    fs::remove_file(t.p("sys/class/net/eth0")).unwrap();
    t.phys("ens3", 2);
    t.net(&with_virt(&[(
        "ens3",
        5_000_002_000,
        4_000_020,
        800_000_300,
        2_000_003,
    )]));
    let v = t.sample_at("2026-11-28T12:10:00Z");
    assert_eq!(
        pick(&v, NET_KEYS),
        json!({"net_in_bytes": 1000, "net_out_bytes": 200,
               "net_in_bytes_cum": 5_000_009_000u64, "net_out_bytes_cum": 800_003_300, "flags": ["iface_vanished"]})
    );
}

#[test]
fn virtual_interfaces_excluded_unless_chosen() {
    let t = Tree::new();
    let o = t.run_at(NOW, &["--iface", "*"]);
    assert_code(&o, 0);
    // all four: 500000+5000000000+70000+90000 in, 500000+800000000+90000+70000 out
    assert_eq!(
        pick(&line(&o), &["net_in_bytes_cum", "net_out_bytes_cum"]),
        json!({"net_in_bytes_cum": 5_000_660_000u64, "net_out_bytes_cum": 800_660_000})
    );
    let t = Tree::new();
    let o = t.run_at(NOW, &["--iface", "veth*", "--iface", "docker?"]);
    assert_code(&o, 0);
    assert_eq!(
        pick(&line(&o), &["net_in_bytes_cum", "net_out_bytes_cum"]),
        json!({"net_in_bytes_cum": 160_000, "net_out_bytes_cum": 160_000})
    );
}

#[test]
fn net_dev_without_space_and_long_names() {
    let t = Tree::new();
    t.phys("enp0s31f6", 9);
    t.write(
        "proc/net/dev",
        "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n    lo:100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\nenp0s31f6:123456 10 0 0 0 0 0 0 654321 20 0 0 0 0 0 0\n",
    );
    let v = t.sample_at(NOW);
    assert_eq!(
        pick(&v, &["net_in_bytes_cum", "net_out_bytes_cum", "errors"]),
        json!({"net_in_bytes_cum": 123_456, "net_out_bytes_cum": 654_321, "errors": []})
    );
}

#[test]
fn meminfo_without_mem_available_and_lxcfs() {
    let t = Tree::new();
    t.write(
        "proc/meminfo",
        "MemTotal: 4000000 kB\nMemFree: 500000 kB\nBuffers: 100000 kB\nCached: 1500000 kB\nSReclaimable: 200000 kB\n",
    );
    let v = t.sample_at(NOW);
    // available ~ 500000+100000+1500000+200000 = 2300000 kB; used 1700000 kB
    // = 1740800000 B = 42.5 % of 4096000000.
    assert_eq!(
        pick(
            &v,
            &[
                "memory_used_bytes",
                "memory_total_bytes",
                "memory_percent",
                "flags"
            ]
        ),
        json!({"memory_used_bytes": 1_740_800_000u64, "memory_total_bytes": 4_096_000_000u64,
               "memory_percent": 42.5, "flags": ["mem_available_estimated"]})
    );
    let t = Tree::new();
    t.write(
        "proc/meminfo",
        "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 2000 kB\n",
    );
    let v = t.sample_at(NOW);
    assert_eq!(
        pick(&v, &["memory_used_bytes", "memory_percent"]),
        json!({"memory_used_bytes": 0, "memory_percent": 0.0})
    );
}

#[test]
fn disk_errors_and_explicit_mounts() {
    let t = Tree::new();
    let mi = fs::read_to_string(t.p("proc/self/mountinfo")).unwrap();
    t.write(
        "proc/self/mountinfo",
        &format!("{mi}40 27 253:9 / /mnt/stale rw - xfs /dev/vdz rw\n"),
    );
    let o = t.run_at(NOW, &[]);
    assert_code(&o, 0);
    let v = line(&o);
    // The stale mount is reported; the others still count.
    assert_eq!(
        pick(&v, &["disk_used_bytes", "disk_total_bytes", "errors"]),
        json!({"disk_used_bytes": 3_277_312_000u64, "disk_total_bytes": 6_145_024_000u64,
               "errors": ["disk /mnt/stale: Stale file handle"]})
    );
    assert_eq!(
        stderr(&o),
        "mb-sample: disk /mnt/stale: Stale file handle\n"
    );

    // --mount: / given twice (and its bind mount) counts once.
    let t = Tree::new();
    let o = t.run_at(
        NOW,
        &["--mount", "/", "--mount", "/srv/bind", "--mount", "/"],
    );
    assert_code(&o, 0);
    assert_eq!(
        pick(&line(&o), &["disk_used_bytes", "disk_total_bytes"]),
        json!({"disk_used_bytes": 1_638_400_000u64, "disk_total_bytes": 4_096_000_000u64})
    );
}

#[test]
fn unusable_state_files_mean_a_first_run() {
    let cases: [(&str, &str); 3] = [
        ("{\"v\":1,\"vm_id\":\"vm-1\",\"boot", "corrupt"),
        ("{\"v\":7,\"future\":true}\n", "layout version 7"),
        ("", "corrupt"),
    ];
    for (text, why) in cases {
        let t = Tree::new();
        t.env.write("state/sample.state", text);
        let o = t.run_at(NOW, &[]);
        assert_code(&o, 0);
        let v = line(&o);
        assert_eq!(
            (v["status"].as_str(), v["seq"].as_u64()),
            (Some("first"), Some(1))
        );
        let err = v["errors"][0].as_str().unwrap();
        assert!(
            err.contains(why) && err.ends_with("treated as a first run"),
            "{err}"
        );
        assert!(stderr(&o).contains(why));
        assert_eq!(t.state_json()["seq"], 1);
    }
    // Written for another VM (a cloned image with its state).
    let t = Tree::new();
    t.sample_at(NOW);
    let o = t.run_at(T300, &["--vm", "vm-2"]);
    assert_code(&o, 0);
    let v = line(&o);
    assert_eq!(v["status"], "first");
    assert!(v["errors"][0]
        .as_str()
        .unwrap()
        .contains("written for VM \"vm-1\", this is \"vm-2\""));
}

#[test]
fn unwritable_state_still_emits_and_exits_1() {
    let t = Tree::new();
    t.env.write("blocker", "a file, not a directory");
    let o = t.run_at(
        NOW,
        &[
            "--state",
            t.env.path("blocker/sample.state").to_str().unwrap(),
        ],
    );
    assert_code(&o, 1);
    let v = line(&o);
    assert_eq!(v["status"], "first");
    // Reading the state failed too (its directory is a file): both said.
    let errs: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].ends_with("treated as a first run"), "{errs:?}");
    assert!(
        errs[1].starts_with("state not saved: cannot create"),
        "{errs:?}"
    );
    assert!(!t.env.path("blocker/sample.state").exists());
}

#[test]
fn concurrent_run_sees_the_lock_and_touches_nothing() {
    let t = Tree::new();
    t.sample_at(NOW);
    let before = fs::read(t.state()).unwrap();
    let lock = fs::File::open(t.env.path("state/sample.state.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    t.uptime("100300.00");
    let o = t.run_at(T300, &[]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("another mb-sample holds"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(t.state()).unwrap(), before);
    drop(lock);
    assert_eq!(t.sample_at(T300)["seq"], 2);
}

#[test]
fn broken_stdout_does_not_advance_the_state() {
    let t = Tree::new();
    t.sample_at(NOW);
    let before = fs::read(t.state()).unwrap();
    t.uptime("100300.00");
    t.cpu(CPU300);
    // stdout is a socket whose reader is already gone: the write fails.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(ours);
    let mut c = t.env.cmd("mb-sample");
    c.env("MB_NOW", T300)
        .args(t.args())
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped());
    let o = c.output().unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).starts_with(
            "mb-sample: stdout closed: the sample was not delivered; state not advanced"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(t.state()).unwrap(), before);
    // The next run covers the undelivered interval.
    let v = t.sample_at(T300);
    assert_eq!(
        (v["seq"].as_u64(), v["cpu_busy_ticks"].as_u64()),
        (Some(2), Some(10800))
    );
}

#[test]
fn lost_state_save_overlaps_and_cum_resolves_it() {
    // Run 1, run 2 (line delivered but its state "lost": we restore run 1's
    // state, as a crash between emit and save would), run 3.
    let t = Tree::new();
    let v1 = t.sample_at(NOW);
    let st1 = fs::read(t.state()).unwrap();
    t.uptime("100300.00");
    t.cpu(CPU300);
    let v2 = t.sample_at(T300);
    fs::write(t.state(), st1).unwrap();
    t.uptime("100600.00");
    t.cpu("cpu  1018000 20000 303000 18596000 50600 10200 20400 101800 112000 0");
    let v3 = t.sample_at("2026-11-28T12:10:00Z");
    // Run 3's delta overlaps run 2's (600 s: busy 18000+3000+200+400 = 21600)...
    assert_eq!(v3["cpu_busy_ticks"], 21600);
    assert_eq!(v3["seq"], 2);
    // ...but the cumulative counters are a function of the raw counters, so
    // usage between any two lines is cum difference, overlap or not:
    // v2-v1 = 10800, v3-v2 = 10800.
    let cum = |v: &Value| v["cpu_busy_ticks_cum"].as_u64().unwrap();
    assert_eq!(cum(&v2) - cum(&v1), 10800);
    assert_eq!(cum(&v3) - cum(&v2), 10800);
}

#[test]
fn a_run_that_reads_nothing_fails() {
    let t = Tree::new();
    let empty = t.env.path("empty");
    fs::create_dir_all(&empty).unwrap();
    let o = t.run_at(NOW, &["--proc-root", empty.to_str().unwrap()]);
    assert_code(&o, 2);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).starts_with("mb-sample: no time base:"),
        "{}",
        stderr(&o)
    );
    // Missing files in a container: what can be read is still sampled.
    let t = Tree::new();
    fs::remove_file(t.p("proc/meminfo")).unwrap();
    let v = t.sample_at(NOW);
    assert_eq!(v["memory_percent"], Value::Null);
    assert!(v["errors"][0]
        .as_str()
        .unwrap()
        .contains("proc/meminfo: No such file"));
}

#[test]
fn no_customer_is_a_usage_error() {
    let t = Tree::new();
    let o = t.env.run(
        "mb-sample",
        &["--proc-root", t.p("proc").to_str().unwrap()],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("no customer configured: pass --customer ID, set MB_CUSTOMER_ID"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_section_and_env() {
    let t = Tree::new();
    let cfg = t.env.write(
        "mb.toml",
        "customer_id = \"acme\"\n[sample]\nifaces = [\"*\"]\nmounts = [\"/data\"]\n",
    );
    let args: Vec<String> = t.args().into_iter().take(8).collect();
    let mut c = t.env.cmd("mb-sample");
    c.env("MB_CONFIG", &cfg).env("MB_VM_ID", "vm-9").args(&args);
    let o = crate::util::run_cmd(&mut c, "");
    assert_code(&o, 0);
    assert_eq!(
        pick(
            &line(&o),
            &[
                "customer_id",
                "vm_id",
                "net_in_bytes_cum",
                "disk_used_bytes"
            ]
        ),
        json!({"customer_id": "acme", "vm_id": "vm-9", "net_in_bytes_cum": 5_000_660_000u64, "disk_used_bytes": 1_638_400_000u64})
    );
    t.env.write(
        "mb.toml",
        "customer_id = \"acme\"\n[sample]\niface = [\"*\"]\n",
    );
    let o = crate::util::run_cmd(&mut c, "");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("[sample]: unknown field `iface`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn watch_ends_cleanly_on_sigterm() {
    let t = Tree::new();
    let mut c = t.env.cmd("mb-sample");
    c.args(t.args())
        .args(["--watch", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // Wait for the first line, then ask it to stop.
    let mut out = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut b = [0u8; 1];
    while !first.ends_with(b"\n") {
        use std::io::Read;
        assert_eq!(out.read(&mut b).unwrap(), 1, "no line from --watch");
        first.push(b[0]);
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::Term).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(status.code(), Some(0));
    let lines = 1 + rest.lines().count() as u64;
    // Every printed line had its state committed: seq in the state = lines.
    assert_eq!(t.state_json()["seq"], lines);
    assert!(String::from_utf8(first)
        .unwrap()
        .contains("\"status\":\"first\""));
}

#[test]
fn real_proc_line_is_accepted_by_mb_ingest() {
    let env = Env::new();
    let state = env.path("state/real.state");
    let o = env.run(
        "mb-sample",
        &[
            "--customer",
            "acme",
            "--vm",
            "vm-real",
            "--state",
            state.to_str().unwrap(),
        ],
        "",
    );
    assert_code(&o, 0);
    let v = line(&o);
    assert_eq!(v["status"], "first");
    assert!(v["memory_total_bytes"].as_u64().unwrap() > 0);
    assert!(v["ncpu"].as_u64().unwrap() >= 1);
    let o2 = env.run(
        "mb-sample",
        &[
            "--customer",
            "acme",
            "--vm",
            "vm-real",
            "--state",
            state.to_str().unwrap(),
        ],
        "",
    );
    assert_code(&o2, 0);
    let both = format!("{}{}", stdout(&o), stdout(&o2));
    let ing = env.run("mb-ingest", &[], &both);
    assert_code(&ing, 0);
    assert!(stderr(&ing).contains("inserted 2"), "{}", stderr(&ing));
    assert_eq!(line(&o2)["status"], "ok");
}

/// A state that parses but holds values no run writes (a seq at 2^63, a
/// boot id that is empty, 10 KB long or has control characters) is corrupt:
/// a first run with a warning, and a line mb-ingest accepts.
#[test]
fn implausible_state_values_are_a_corrupt_state() {
    let good = {
        let t = Tree::new();
        t.sample_at(NOW);
        t.state_json()
    };
    let long = "b".repeat(10_000);
    let cases: Vec<(&str, Value)> = vec![
        ("seq", json!(9_223_372_036_854_775_808u64)),
        ("seq", json!(9_223_372_036_854_775_807u64)),
        ("boot_id", json!("")),
        ("boot_id", json!(long)),
        ("boot_id", json!("6f1c\u{1b}[2J")),
    ];
    for (field, value) in cases {
        let t = Tree::new();
        let mut st = good.clone();
        st[field] = value.clone();
        t.env.write("state/sample.state", &st.to_string());
        let o = t.run_at(T300, &[]);
        assert_code(&o, 0);
        let v = line(&o);
        assert_eq!(
            (v["status"].as_str(), v["seq"].as_u64()),
            (Some("first"), Some(1)),
            "{field} = {value}"
        );
        let err = v["errors"][0].as_str().unwrap();
        assert!(
            err.contains("corrupt") && err.ends_with("treated as a first run"),
            "{err}"
        );
        // What mb-sample wrote, mb-ingest stores.
        let o = t.env.run(
            "mb-ingest",
            &["--db", t.env.path("u.db").to_str().unwrap()],
            &stdout(&o),
        );
        assert_code(&o, 0);
    }
}

/// A FIFO in place of /proc/stat (or any kernel file) is an error of that
/// source, never a hang: the other sources are still sampled.
#[test]
fn a_fifo_in_place_of_a_kernel_file_is_an_error_not_a_hang() {
    let t = Tree::new();
    let stat = t.p("proc/stat");
    fs::remove_file(&stat).unwrap();
    let ok = std::process::Command::new("mkfifo")
        .arg(&stat)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let mut c = t.env.cmd("mb-sample");
    c.env("MB_NOW", NOW)
        .args(t.args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("mb-sample hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    let v = line(&o);
    let err = v["errors"][0].as_str().unwrap();
    assert!(err.contains("proc/stat: not a regular file"), "{err}");
    assert_eq!(v["memory_percent"], 25.0);
}
