//! Bulk TCP throughput: a direct connection against the userspace proxy (splice relay and buffered copy), on
//! loopback or between network namespaces over veth. Prints MiB/s per run and a median (min–max) summary;
//! asserts nothing.
//!
//! ```text
//! cargo run -p kube-proxy-userspace --release --example throughput -- \
//!     [--net loopback|veth] [--runs 5] [--mib 2048] [--paths direct,splice,copy,splice-fixed] \
//!     [--proxy-threads 2] [--pin-client CPU] [--pin-server CPU] [--pin-proxy CPU] [--copy-buffer BYTES] \
//!     [--socket-buffer BYTES]
//! ```
//!
//! The client and the server are plain blocking threads (one each, like iperf's processes); the proxy runs on its
//! own multi-threaded Tokio runtime with as many workers as the binary uses (2). The client writes `--mib` MiB in
//! 1 MiB writes, shuts its write half down and waits for the server's EOF, so the time covers every byte reaching
//! the server. The paths alternate within each run, so that load from elsewhere spreads over all of them.
//!
//! `--net veth` (root) builds three namespaces, which is how a node sees the traffic:
//! `client (10.77.1.2) ⇄ veth ⇄ node (10.77.1.1 | 10.77.2.1, forwarding) ⇄ veth ⇄ backend (10.77.2.2)`.
//! "direct" connects to the backend through the node's kernel forwarding; "splice"/"copy" connect to a service
//! address (`10.96.77.x`, a `local` route on the node's `lo`) served by the proxy in the node namespace.
//!
//! Paths: `direct`, `splice` and `copy` (the proxy's defaults with either relay) and `splice-fixed` (splice with
//! `socket_buffer_size` = `--socket-buffer`, 256 KiB unless given; not in the default set).
//!
//! `--pin-*` pins the client thread, the server thread or every proxy worker to one CPU (sched_setaffinity).
//! The figures also give CPU time (user + system of this process, all threads) per GiB moved: on a shared
//! machine it is steadier than MiB/s, and it is what the proxy costs.

#[cfg(target_os = "linux")]
fn main() {
    bench::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("this benchmark needs Linux (splice, network namespaces)");
}

#[cfg(target_os = "linux")]
mod bench {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use kube_proxy_model::{fixtures, IpFamily, ProxyState};
    use kube_proxy_userspace::{UserspaceConfig, UserspaceProxy};

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Net {
        Loopback,
        Veth,
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Path {
        Direct,
        Splice,
        Copy,
        SpliceFixed,
    }

    /// The paths through the proxy, in the order of their service addresses.
    const PROXIED: [Path; 3] = [Path::Splice, Path::Copy, Path::SpliceFixed];

    impl Path {
        fn key(self) -> &'static str {
            match self {
                Path::Direct => "direct",
                Path::Splice => "splice",
                Path::Copy => "copy",
                Path::SpliceFixed => "splice-fixed",
            }
        }

        fn label(self, o: &Opts) -> String {
            match self {
                Path::Direct => "direct".into(),
                Path::Splice => "proxy, splice(2) relay".into(),
                Path::Copy => "proxy, buffered copy".into(),
                Path::SpliceFixed => {
                    format!("proxy, splice, {} KiB buffers", o.socket_buffer / 1024)
                }
            }
        }

        /// The proxy configuration of a proxied path.
        fn config(self, o: &Opts) -> UserspaceConfig {
            let defaults = UserspaceConfig::default();
            UserspaceConfig {
                use_splice: self != Path::Copy,
                copy_buffer_size: o.copy_buffer.unwrap_or(defaults.copy_buffer_size),
                socket_buffer_size: (self == Path::SpliceFixed).then_some(o.socket_buffer),
                ..defaults
            }
        }
    }

    struct Opts {
        net: Net,
        runs: usize,
        mib: usize,
        paths: Vec<Path>,
        proxy_threads: usize,
        pin_client: Option<usize>,
        pin_server: Option<usize>,
        pin_proxy: Option<usize>,
        copy_buffer: Option<usize>,
        socket_buffer: usize,
    }

    fn parse_args() -> Opts {
        let mut o = Opts {
            net: Net::Loopback,
            runs: 5,
            mib: 2048,
            paths: vec![Path::Direct, Path::Splice, Path::Copy],
            proxy_threads: 2,
            pin_client: None,
            pin_server: None,
            pin_proxy: None,
            copy_buffer: None,
            socket_buffer: 256 * 1024,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            let num = || -> usize {
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--net" => {
                    o.net = match value.as_str() {
                        "loopback" => Net::Loopback,
                        "veth" => Net::Veth,
                        other => panic!("--net: loopback or veth, not {other}"),
                    }
                }
                "--runs" => o.runs = num(),
                "--mib" => o.mib = num(),
                "--proxy-threads" => o.proxy_threads = num().max(1),
                "--pin-client" => o.pin_client = Some(num()),
                "--pin-server" => o.pin_server = Some(num()),
                "--pin-proxy" => o.pin_proxy = Some(num()),
                "--copy-buffer" => o.copy_buffer = Some(num().max(1)),
                "--socket-buffer" => o.socket_buffer = num().max(1),
                "--paths" => {
                    o.paths = value
                        .split(',')
                        .map(|p| match p {
                            "direct" => Path::Direct,
                            "splice" => Path::Splice,
                            "copy" => Path::Copy,
                            "splice-fixed" => Path::SpliceFixed,
                            other => panic!("--paths: direct, splice or copy, not {other}"),
                        })
                        .collect()
                }
                other => panic!("unknown flag {other}"),
            }
        }
        o
    }

    fn pin(cpu: Option<usize>) {
        if let Some(cpu) = cpu {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu).expect("CPU number");
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pin thread");
        }
    }

    /// CPU time (user + system) of this whole process so far.
    fn cpu_time() -> Duration {
        let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
            .expect("getrusage");
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
        };
        tv(u.user_time()) + tv(u.system_time())
    }

    /// A server that reads every connection to EOF on its own thread, then closes.
    fn start_sink(listener: TcpListener, cpu: Option<usize>) {
        std::thread::spawn(move || {
            while let Ok((mut s, _)) = listener.accept() {
                std::thread::spawn(move || {
                    pin(cpu);
                    let mut buf = vec![0u8; 256 * 1024];
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                    let _ = s.shutdown(Shutdown::Write);
                });
            }
        });
    }

    /// Sends `mib` MiB to `to`, half-closes, waits for EOF; returns the elapsed wall time.
    fn send(to: SocketAddr, mib: usize, cpu: Option<usize>) -> Duration {
        pin(cpu);
        let mut s = TcpStream::connect(to).expect("connect");
        let chunk = vec![0x5au8; 1024 * 1024];
        let start = Instant::now();
        for _ in 0..mib {
            s.write_all(&chunk).expect("write");
        }
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("read");
        start.elapsed()
    }

    fn state(vips: &[SocketAddr], backend: SocketAddr) -> Arc<ProxyState> {
        let services = vips
            .iter()
            .enumerate()
            .map(|(i, vip)| {
                let mut svc = fixtures::svc(
                    fixtures::name("bench", &format!("bulk-{i}"), ""),
                    &vip.ip().to_string(),
                    vip.port(),
                );
                svc.endpoints = vec![fixtures::ep(
                    &backend.ip().to_string(),
                    backend.port(),
                    true,
                )];
                fixtures::finish(svc)
            })
            .collect();
        Arc::new(fixtures::state(IpFamily::V4, services))
    }

    /// One proxy per proxied path, serving `vips[i]` → `backend` with the configuration of `PROXIED[i]`, on a
    /// runtime whose threads all start with `enter` (e.g. entering the node's namespace).
    fn start_proxies(
        o: &Opts,
        vips: [SocketAddr; 3],
        backend: SocketAddr,
        enter: impl Fn() + Send + Sync + 'static,
    ) -> (tokio::runtime::Runtime, Vec<Arc<UserspaceProxy>>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.proxy_threads)
            .enable_all()
            .on_thread_start(enter)
            .build()
            .expect("runtime");
        let mut proxies = Vec::new();
        for (path, vip) in PROXIED.into_iter().zip(vips) {
            let st = state(&[vip], backend);
            let cfg = path.config(o);
            let proxy = Arc::new(UserspaceProxy::new(cfg, st.clone()));
            let p = Arc::clone(&proxy);
            // Applied on a worker, so that the listener is created in the workers' namespace.
            let outcome = rt
                .block_on(rt.spawn(async move { p.apply(st).await }))
                .expect("apply task");
            assert!(outcome.is_complete(), "{:?}", outcome.errors);
            proxies.push(proxy);
        }
        (rt, proxies)
    }

    fn targets(backend: SocketAddr, vips: [SocketAddr; 3]) -> BTreeMap<&'static str, SocketAddr> {
        let mut t = BTreeMap::from([("direct", backend)]);
        t.extend(PROXIED.iter().map(|p| p.key()).zip(vips));
        t
    }

    /// Where each path connects to, and how the client runs (in which namespace).
    struct Setup {
        targets: BTreeMap<&'static str, SocketAddr>,
        run_client: Box<dyn Fn(SocketAddr, usize, Option<usize>) -> Duration>,
        _keep: Box<dyn std::any::Any>,
    }

    fn loopback_setup(o: &Opts) -> Setup {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let backend = l.local_addr().expect("sink address");
        start_sink(l, o.pin_server);
        let vips: [SocketAddr; 3] = [
            "127.0.88.1:9000".parse().unwrap(),
            "127.0.88.2:9000".parse().unwrap(),
            "127.0.88.3:9000".parse().unwrap(),
        ];
        let pin_proxy = o.pin_proxy;
        let keep = start_proxies(o, vips, backend, move || pin(pin_proxy));
        Setup {
            targets: targets(backend, vips),
            run_client: Box::new(send),
            _keep: Box::new(keep),
        }
    }

    fn veth_setup(o: &Opts) -> Setup {
        use kube_proxy_testkit::netns::link::{add_addr, add_route, veth};
        use kube_proxy_testkit::netns::Netns;

        assert!(
            nix::unistd::geteuid().is_root(),
            "--net veth needs root (network namespaces)"
        );
        let client = Netns::new("tp-client").expect("netns");
        let node = Netns::new("tp-node").expect("netns");
        let server = Netns::new("tp-backend").expect("netns");
        veth(&client, "eth0", &node, "vc").expect("veth");
        veth(&server, "eth0", &node, "vb").expect("veth");
        add_addr(&client, "eth0", "10.77.1.2/24").unwrap();
        add_addr(&node, "vc", "10.77.1.1/24").unwrap();
        add_addr(&node, "vb", "10.77.2.1/24").unwrap();
        add_addr(&server, "eth0", "10.77.2.2/24").unwrap();
        add_route(&client, "default", Some("10.77.1.1"), None).unwrap();
        add_route(&server, "default", Some("10.77.2.1"), None).unwrap();
        node.enable_forwarding().unwrap();
        let vips: [SocketAddr; 3] = [
            "10.96.77.1:80".parse().unwrap(),
            "10.96.77.2:80".parse().unwrap(),
            "10.96.77.3:80".parse().unwrap(),
        ];
        for vip in vips {
            // What the proxy's bind-VIPs addressing installs: the service address is local on the node.
            node.ip(&[
                "route",
                "add",
                "local",
                &format!("{}/32", vip.ip()),
                "dev",
                "lo",
                "table",
                "local",
            ])
            .unwrap();
        }

        let l = server
            .run_in(|| TcpListener::bind("10.77.2.2:5201"))
            .unwrap()
            .expect("bind sink");
        let backend = l.local_addr().unwrap();
        start_sink(l, o.pin_server);

        let ns_file = Arc::new(
            std::fs::File::open(format!("/run/netns/{}", node.name())).expect("open node netns"),
        );
        let pin_proxy = o.pin_proxy;
        let keep = start_proxies(o, vips, backend, move || {
            nix::sched::setns(&*ns_file, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter node netns");
            pin(pin_proxy);
        });

        let client = Arc::new(client);
        let c = Arc::clone(&client);
        Setup {
            targets: targets(backend, vips),
            run_client: Box::new(move |to, mib, cpu| {
                c.run_in(|| send(to, mib, cpu)).expect("client netns")
            }),
            // The runtime goes first (its sockets), then the namespaces.
            _keep: Box::new((keep, client, node, server)),
        }
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    pub fn main() {
        let o = parse_args();
        let setup = match o.net {
            Net::Loopback => loopback_setup(&o),
            Net::Veth => veth_setup(&o),
        };
        println!(
            "net={:?} runs={} mib={} proxy-threads={} pin client={:?} server={:?} proxy={:?}",
            o.net, o.runs, o.mib, o.proxy_threads, o.pin_client, o.pin_server, o.pin_proxy
        );
        let key = |p: Path| p.key();
        let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for run in 1..=o.runs {
            for &p in &o.paths {
                let to = setup.targets[key(p)];
                let cpu0 = cpu_time();
                let took = (setup.run_client)(to, o.mib, o.pin_client);
                // Let the server thread finish its last read (it closes after the client saw EOF at the latest).
                let cpu_s = (cpu_time() - cpu0).as_secs_f64();
                let rate = o.mib as f64 / took.as_secs_f64();
                let per_gib = cpu_s / (o.mib as f64 / 1024.0);
                println!(
                    "run {run} {:<32} {rate:8.0} MiB/s  {per_gib:6.3} CPU-s/GiB",
                    p.label(&o)
                );
                rates.entry(key(p)).or_default().push(rate);
                cpu.entry(key(p)).or_default().push(per_gib);
            }
        }
        println!();
        println!("| path | MiB/s, median (min–max) | ÷ direct | CPU-s per GiB, median |");
        println!("|---|---|---|---|");
        let direct = rates.get("direct").map(|v| median(&mut v.clone()));
        for &p in &o.paths {
            let v = rates.get_mut(key(p)).expect("measured");
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(0.0, f64::max);
            let med = median(v);
            let ratio = direct.map_or("–".to_string(), |d| format!("{:.2}", med / d));
            let c = median(cpu.get_mut(key(p)).expect("measured"));
            println!(
                "| {} | {med:.0} ({min:.0}–{max:.0}) | {ratio} | {c:.3} |",
                p.label(&o)
            );
        }
    }
}
