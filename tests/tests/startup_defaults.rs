//! The defaults lnetd reports for start-up parameters that an LND reads
//! (`lctl get_param lnet.accept*` when not given) are the ones lnd-sock's
//! acceptor really uses.

use lnd_sock::params::{AcceptMode, Params};

fn reported(name: &str) -> &'static str {
    lnetd::ctl::STARTUP_DEFAULTS
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(_, _, v)| *v)
        .unwrap_or_else(|| panic!("lnetd reports no default for {name}"))
}

#[test]
fn lnetd_reports_the_acceptor_defaults_lnd_sock_uses() {
    let p = Params::default();
    let mode = match p.accept {
        AcceptMode::Secure => "secure",
        AcceptMode::All => "all",
        AcceptMode::None => "none",
    };
    assert_eq!(reported("accept"), mode);
    assert_eq!(reported("accept_port"), p.accept_port.to_string());
    assert_eq!(
        p.accept_port_bulk, p.accept_port,
        "bulk follows accept_port"
    );
    assert_eq!(reported("accept_backlog"), p.accept_backlog.to_string());
    assert_eq!(
        reported("accept_timeout"),
        p.accept_timeout.as_secs().to_string()
    );
}
