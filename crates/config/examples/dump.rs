//! Prints the effective configuration for a kube-proxy command line (debug aid).
fn main() {
    match kube_proxy_config::load(std::env::args_os()) {
        Ok(l) => {
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", kube_proxy_config::to_yaml(&l.raw).unwrap());
            eprintln!("{:#?}", l.config);
        }
        Err(kube_proxy_config::ConfigError::ParseFlags(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
    }
}
