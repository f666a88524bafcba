//! The binary's command line: errors before any kernel change, `render`, `--cleanup`, `--write-config-to`,
//! and the manifests source programming a network namespace and following file changes.

mod common;

use std::process::Command;

use kube_proxy_testkit::netns::{eventually, Netns};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kube-proxy-rs"))
}

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn bad_flag_value_exits_non_zero_naming_the_field() {
    let out = bin()
        .args([
            "--iptables-masquerade-bit=40",
            "--manifests",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("masqueradeBit"), "{err}");
}

#[test]
fn bad_config_file_exits_non_zero_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: bogus\n",
    )
    .unwrap();
    let out = bin().arg("--config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode"), "{err}");
}

#[test]
fn unknown_flag_is_rejected() {
    let out = bin().arg("--no-such-flag").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn write_config_to_round_trips_through_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.yaml");
    let out = bin()
        .args(["--masquerade-all", "--cluster-cidr=10.244.0.0/16"])
        .arg(format!("--write-config-to={}", path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("masqueradeAll: true"), "{text}");
    assert!(text.contains("clusterCIDR: 10.244.0.0/16"), "{text}");
    // The written file is accepted back.
    let dir2 = tempfile::tempdir().unwrap();
    let again = dir2.path().join("again.yaml");
    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg(format!("--write-config-to={}", again.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text, std::fs::read_to_string(&again).unwrap());
}

#[test]
fn render_prints_upstream_layout_without_root() {
    let out = bin()
        .args(["render", "--hostname-override", "node-1", "--manifests"])
        .arg(examples())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "*nat",
        "*filter",
        "-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\"",
        "--probability 0.3333333333",
        "-m recent --name KUBE-SEP-",
        "default/nobody-home has no endpoints",
        "-j KUBE-FW-",
        "--dport 30080",
        "COMMIT",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn render_ipvs_prints_virtual_servers_ipsets_and_rules_without_root() {
    let out = bin()
        .args([
            "render",
            "--proxy-mode",
            "ipvs",
            "--hostname-override",
            "node-1",
            "--manifests",
        ])
        .arg(examples())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "TCP  10.96.0.10:80 rr",
        "  -> 10.244.1.10:8080             Masq    1",
        "UDP  10.96.0.53:53 rr persistent 600",
        "# kube-ipvs0 addresses\n10.96.0.10\n",
        "KUBE-CLUSTER-IP (hash:ip,port)\n  10.96.0.10,tcp:80\n",
        "KUBE-LOOP-BACK (hash:ip,port,ip)",
        "-A KUBE-SERVICES",
        "COMMIT",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn manifests_source_programs_and_follows_changes_then_cleanup_removes_it() {
    if !common::privileged("manifests_source_programs_and_follows_changes_then_cleanup_removes_it")
    {
        return;
    }
    let ns = Netns::new("cli").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let mut cmd = bin();
    cmd.args([
        "--hostname-override",
        "node-1",
        "--conntrack-max-per-core=0",
        "--iptables-min-sync-period=100ms",
        "--manifests",
    ])
    .arg(dir.path())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut child = ns.spawn(&mut cmd).unwrap();
    let save = |ns: &Netns| ns.exec_ok(&["iptables-nft-save"]).unwrap_or_default();
    let programmed = eventually(common::SETTLE, || {
        save(&ns).contains("10.96.0.10").then_some(())
    });
    assert!(programmed.is_some(), "examples programmed:\n{}", save(&ns));
    // A new file appears: its Service gets rules.
    std::fs::write(
        dir.path().join("extra.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: default}\n\
         spec: {type: ClusterIP, clusterIP: 10.96.7.7, clusterIPs: [10.96.7.7], ports: [{port: 81, protocol: TCP}]}\n",
    )
    .unwrap();
    assert!(
        eventually(common::SETTLE, || save(&ns)
            .contains("10.96.7.7")
            .then_some(()))
        .is_some(),
        "new file picked up"
    );
    // A malformed file is skipped; everything else keeps working.
    std::fs::write(dir.path().join("broken.yaml"), "kind: Service\n  : : [\n").unwrap();
    std::fs::remove_file(dir.path().join("extra.yaml")).unwrap();
    assert!(
        eventually(common::SETTLE, || (!save(&ns).contains("10.96.7.7"))
            .then_some(()))
        .is_some(),
        "removed file's service dropped"
    );
    assert!(
        save(&ns).contains("10.96.0.10"),
        "healthy services untouched"
    );
    let _ = child.kill();
    let _ = child.wait();
    // SIGKILL left the rules; --cleanup removes them.
    assert!(save(&ns).contains("KUBE-SERVICES"));
    let out = ns
        .exec(&[env!("CARGO_BIN_EXE_kube-proxy-rs"), "--cleanup"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nat = ns
        .exec_ok(&["iptables-nft-save", "-t", "nat"])
        .unwrap_or_default();
    let filter = ns
        .exec_ok(&["iptables-nft-save", "-t", "filter"])
        .unwrap_or_default();
    assert!(!nat.contains("KUBE-"), "nat after cleanup:\n{nat}");
    // Only kubelet-shared KUBE-FIREWALL may stay, as upstream leaves it.
    for line in filter.lines().filter(|l| l.contains("KUBE-")) {
        assert!(
            line.contains("KUBE-FIREWALL"),
            "filter after cleanup: {line}"
        );
    }
}

#[test]
fn ipvs_mode_falls_back_to_iptables_without_ipvs() {
    if !common::privileged("ipvs_mode_falls_back_to_iptables_without_ipvs") {
        return;
    }
    // This host's kernel has no IPVS (the VM tests cover IPVS itself).
    assert!(
        !kube_proxy_ipvs::ipvs_available(),
        "this test expects a kernel without IPVS"
    );
    let ns = Netns::new("ipvs-fallback").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let out = ns
        .exec(&[
            env!("CARGO_BIN_EXE_kube-proxy-rs"),
            "--proxy-mode=ipvs",
            "--sync-once",
            "--hostname-override=node-1",
            "--conntrack-max-per-core=0",
            "--manifests",
            examples().to_str().unwrap(),
        ])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("falling back to iptables mode"), "{err}");
    let save = ns.exec_ok(&["iptables-nft-save", "-t", "nat"]).unwrap();
    assert!(
        save.contains("KUBE-SVC-"),
        "iptables rules programmed:\n{save}"
    );
}

#[test]
fn unknown_ipvs_scheduler_is_a_configuration_error() {
    let out = bin()
        .args([
            "--proxy-mode=ipvs",
            "--ipvs-scheduler=bogus",
            "--manifests",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scheduler"), "{err}");
}
