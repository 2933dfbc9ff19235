// Tests of the `nid` module: unit tests of every syntax and property tests
// (display then parse gives the value back; no input panics).

use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn nid(s: &str) -> Nid {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn list(s: &str) -> NidList {
    NidList::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn strs(nids: &[Nid]) -> Vec<String> {
    nids.iter().map(|n| n.to_string()).collect()
}

#[test]
fn process_ids() {
    let p: ProcessId = "12345-192.168.1.10@tcp".parse().expect("parses");
    assert_eq!(p, ProcessId::lustre(nid("192.168.1.10@tcp")));
    assert_eq!(p.to_string(), "12345-192.168.1.10@tcp");
    let u = ProcessId::new(nid("10.0.0.1@tcp"), 1023 | LNET_PID_USERFLAG);
    assert!(u.is_userspace());
    assert_eq!(u.to_string(), "U1023-10.0.0.1@tcp");
    assert_eq!("U1023-10.0.0.1@tcp".parse::<ProcessId>().ok(), Some(u));
    let a = ProcessId::new(nid("0@lo"), LNET_PID_ANY);
    assert_eq!(a.to_string(), "LNET_PID_ANY-0@lo");
    assert_eq!("LNET_PID_ANY-0@lo".parse::<ProcessId>().ok(), Some(a));
    assert_eq!(ProcessId::ANY.to_string(), "LNET_PID_ANY-<?>");
    assert_eq!(
        "10.0.0.1@o2ib".parse::<ProcessId>().ok(),
        Some(ProcessId::lustre(nid("10.0.0.1@o2ib")))
    );
    assert_eq!(
        "7-2001:db8::1@tcp".parse::<ProcessId>().ok(),
        Some(ProcessId::new(nid("2001:db8::1@tcp"), 7))
    );
    let e = |s: &str| {
        s.parse::<ProcessId>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(e("x-1.2.3.4@tcp").contains("PID \"x\" is not a decimal number"));
    assert!(e("U2147483648-1.2.3.4@tcp").contains("user PID"));
    assert!(e("12345-1.2.3.400@tcp")
        .starts_with("invalid process ID \"12345-1.2.3.400@tcp\": invalid NID \"1.2.3.400@tcp\""));
    assert!(e("-1.2.3.4@tcp").contains("PID \"\""));
}

#[test]
fn wildcard_nids() {
    assert_eq!(parse_any_nid("*").ok(), Some(Nid::ANY));
    assert_eq!(parse_any_nid("<?>").ok(), Some(Nid::ANY));
    assert_eq!(parse_any_nid("1.2.3.4@tcp").ok(), Some(nid("1.2.3.4@tcp")));
    let e = parse_any_nid("**").expect_err("bad").to_string();
    assert_eq!(
        e,
        "invalid NID \"**\": address \"**\" is not an IPv4 address"
    );
}

#[test]
fn expression_lists() {
    let l = NumExprList::parse("[0-3/2,5]").expect("parses");
    assert_eq!(l.values().collect::<Vec<_>>(), [0, 2, 5]);
    assert!(l.matches(2) && l.matches(5) && !l.matches(1) && !l.matches(4));
    assert_eq!(l.to_string(), "[0-3/2,5]");
    assert_eq!(l.max_value(), 5);
    assert_eq!(
        NumExprList::parse("[ 1 - 4 ]")
            .map(|l| l.to_string())
            .ok()
            .as_deref(),
        Some("[1-4]")
    );
    assert_eq!(
        NumExprList::parse("[7]")
            .map(|l| l.to_string())
            .ok()
            .as_deref(),
        Some("7")
    );
    assert_eq!(
        NumExprList::parse("0x10")
            .map(|l| l.to_string())
            .ok()
            .as_deref(),
        Some("16")
    );
    assert_eq!(
        NumExprList::parse("010")
            .map(|l| l.to_string())
            .ok()
            .as_deref(),
        Some("8")
    );
    let star = NumExprList::parse_bounded("*", 0, 255).expect("parses");
    assert_eq!(star.to_string(), "[0-255]");
    assert_eq!(star.count(), 256);
    assert_eq!(
        NumExprList::parse("[0-7/2]")
            .expect("parses")
            .fmt_bracketed()
            .to_string(),
        "[0-7/2]"
    );
    assert_eq!(
        NumExprList::parse("5")
            .expect("parses")
            .fmt_bracketed()
            .to_string(),
        "[5]"
    );
    let e = |s: &str| {
        NumExprList::parse_bounded(s, 0, 255)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(e("[1-0]").contains("wrong order"));
    assert!(e("[]").contains("empty element"));
    assert!(e("[1,]").contains("empty element"));
    assert!(e("[1-4/0]").contains("step \"0\""));
    assert!(e("[1-300]").contains("300 in \"1-300\" is out of range 0..255"));
    assert!(e("1-4").contains("ranges go in brackets"));
    assert!(e("[1-4").contains("unbalanced"));
    assert!(e("[a]").contains("\"a\" is not a number"));
    assert!(e("[1-]").contains("missing a number"));
    assert!(e("08").contains("not a number"));
    assert_eq!(RangeExpr::new(1, 10, 4).map(|r| r.max()), Some(9));
}

#[test]
fn nidlist_examples_of_semantics_md_14_2() {
    let l = list("192.168.0.[1-10/2]@tcp");
    let all: Vec<_> = (0..=12)
        .map(|d| nid(&format!("192.168.0.{d}@tcp")))
        .collect();
    let m: Vec<_> = all
        .iter()
        .filter(|n| l.matches(n))
        .map(|n| n.addr4().unwrap_or(0) & 0xFF)
        .collect();
    assert_eq!(m, [1, 3, 5, 7, 9]);
    assert!(!l.matches(&nid("192.168.0.1@tcp1")));
    assert!(!l.matches(&nid("192.168.0.1@o2ib")));

    let l = list("10.[1,3].0.*@o2ib1");
    assert!(l.matches(&nid("10.3.0.77@o2ib1")));
    assert!(!l.matches(&nid("10.2.0.77@o2ib1")));
    assert_eq!(l.to_string(), "10.[1,3].0.[0-255]@o2ib1");

    let l = list("*@o2ib");
    assert!(l.matches(&nid("1.2.3.4@o2ib")) && l.matches(&nid("fd00::1@o2ib")));
    assert!(!l.matches(&nid("1.2.3.4@o2ib1")) && !l.matches(&Nid::ANY));

    let l = list("[0-255/16]@kfi");
    assert!(l.matches(&nid("32@kfi")) && !l.matches(&nid("33@kfi")) && !l.matches(&nid("256@kfi")));

    let l = list("192.168.0.0/24@tcp");
    assert!(l.matches(&nid("192.168.0.200@tcp")) && !l.matches(&nid("192.168.1.1@tcp")));
    assert_eq!(l.to_string(), "192.168.0.0/24@tcp");

    let l = list("fd00::/64@tcp1");
    assert!(l.matches(&nid("fd00::abcd@tcp1")));
    assert!(!l.matches(&nid("fd00:0:0:1::1@tcp1")));
    assert!(
        !l.matches(&nid("253.0.0.0@tcp1")),
        "IPv6 masks match 16-byte addresses only"
    );

    let l = list("2001:db8::1@tcp");
    assert!(l.matches(&nid("2001:db8::1@tcp")) && !l.matches(&nid("2001:db8::2@tcp")));
    assert_eq!(l.to_string(), "2001:db8::1@tcp");

    // A 16-byte NID never matches an IPv4 range or a /8.
    assert!(!list("*.*.*.*@tcp 0.0.0.0/1@tcp 128.0.0.0/1@tcp").matches(&nid("::1@tcp")));
    assert!(list("0@lo").matches(&Nid::LO_0));
}

#[test]
fn nidlist_merges_and_prints_canonically() {
    let l = list("  1.2.3.4@tcp   10.0.0.0/8@tcp 5@gni 1.2.3.5/32@tcp [6-7]@gni ");
    assert_eq!(l.nets().len(), 2);
    assert_eq!(
        l.to_string(),
        "10.0.0.0/8@tcp 1.2.3.4@tcp 1.2.3.5@tcp 5@gni [6-7]@gni"
    );
    assert_eq!(list(&l.to_string()), l);
    let l = list("1.2.3.4@tcp *@tcp 5.6.7.8@tcp 1@gni");
    assert_eq!(l.to_string(), "*@tcp 1@gni");
    assert!(l.nets()[0].is_all());
    assert_eq!(
        list("0x10@kfi 010.1.1.1@tcp").to_string(),
        "16@kfi 8.1.1.1@tcp"
    );
}

#[test]
fn nidlist_errors_name_the_item() {
    let e = |s: &str| {
        NidList::parse(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        e("1.2.3.4@tcp 10.0.0.[1-300]@tcp"),
        "invalid nidlist \"1.2.3.4@tcp 10.0.0.[1-300]@tcp\": item \"10.0.0.[1-300]@tcp\": octet 300 in \"1-300\" is out of range 0..255"
    );
    assert!(e("1.2.3.4").contains("missing \"@<net>\""));
    assert!(e("1.2.3@tcp").contains("does not have four octets"));
    assert!(e("1.2.3.4@foo").contains("unknown network type \"foo\""));
    assert!(e("1@<20:1>").contains("not of a known type"));
    assert!(e("10.0.0.0@tcp/8").contains("unknown network type \"tcp/8\""));
    assert!(e("10.0.0.0/33@tcp").contains("prefix length \"33\""));
    assert!(e("10.0.0.0/0@tcp").contains("prefix length \"0\""));
    assert!(e("fd00::/129@tcp").contains("prefix length"));
    assert!(e("fd00::/64@gip").contains("takes IPv4 only"));
    assert!(e("fd00::/64@gni").contains("numeric addresses"));
    assert!(e("1.2.3.4@tcp@tcp").contains("network"));
    assert!(e("@tcp").contains("empty"));
    assert!(e("").contains("no items"));
    assert!(e("   ").contains("no items"));
    assert!(e("[1-2@kfi").contains("unbalanced"));
    assert!(e("x.y::z/3@tcp").contains("not an IPv6 address"));
    assert!(e("1.2.3.256/8@tcp").contains("not an IPv4 address"));
}

#[test]
fn nidlist_expansion_orders_like_lnetctl_and_is_bounded() {
    let x = |s: &str| strs(&list(s).expand(LNET_MAX_NIDS_PER_PEER).expect("expands"));
    assert_eq!(
        x("6.6.[6-7].[0-4/2]@tcp"),
        [
            "6.6.6.0@tcp",
            "6.6.6.2@tcp",
            "6.6.6.4@tcp",
            "6.6.7.0@tcp",
            "6.6.7.2@tcp",
            "6.6.7.4@tcp"
        ]
    );
    assert_eq!(x("[6-12/4]@gni"), ["6@gni", "10@gni"]);
    assert_eq!(
        x("5.5.5.[1,2,3-4]@o2ib"),
        [
            "5.5.5.1@o2ib",
            "5.5.5.2@o2ib",
            "5.5.5.3@o2ib",
            "5.5.5.4@o2ib"
        ]
    );
    assert_eq!(
        x("[15-16/3].[17-19/4].[1].[5-20/5]@tcp"),
        [
            "15.17.1.5@tcp",
            "15.17.1.10@tcp",
            "15.17.1.15@tcp",
            "15.17.1.20@tcp"
        ]
    );
    assert_eq!(x("10.0.0.4/30@tcp").len(), 4);
    assert_eq!(x("10.0.0.4/30@tcp")[3], "10.0.0.7@tcp");
    assert_eq!(
        x("fd00::/126@tcp"),
        ["fd00::@tcp", "fd00::1@tcp", "fd00::2@tcp", "fd00::3@tcp"]
    );

    let big = list("*.*.*.*@tcp");
    assert_eq!(big.count(), Some(1 << 32));
    let e = big.expand(1000).expect_err("too many").to_string();
    assert_eq!(
        e,
        "cannot expand nidlist \"[0-255].[0-255].[0-255].[0-255]@tcp\": names 4294967296 NIDs, more than the limit of 1000"
    );
    assert!(list("fd00::/8@tcp").expand(usize::MAX).is_err());
    let e = list("10.0.0.0/8@tcp")
        .expand(usize::MAX)
        .expect_err("over MAX_EXPAND");
    assert!(
        e.to_string().contains("more than the limit of 1048576"),
        "{e}"
    );
    assert!(list("[0-4294967295]@gni").expand(10).is_err());
    assert!(list("*@tcp")
        .expand(10)
        .expect_err("unbounded")
        .to_string()
        .contains("every NID"));
    assert_eq!(
        list("1.1.1.[1-129]@tcp").expand(128).map(|v| v.len()).ok(),
        None
    );
    assert_eq!(
        list("1.1.1.[1-128]@tcp").expand(128).map(|v| v.len()).ok(),
        Some(128)
    );
}

#[test]
fn cpt_lists() {
    let c = NumExprList::parse_cpts("[0,1]", 4).expect("parses");
    assert_eq!(c.values().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        NumExprList::parse_cpts("[0-7/2]", 8)
            .map(|c| c.count())
            .ok(),
        Some(4)
    );
    assert_eq!(
        NumExprList::parse_cpts("*", 3)
            .map(|c| c.to_string())
            .ok()
            .as_deref(),
        Some("[0-2]")
    );
    let e = |s: &str| {
        NumExprList::parse_cpts(s, 4)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(e("[1-0]").contains("wrong order"));
    assert!(e("[]").contains("empty element"));
    assert!(e("[0-4]").contains("(CPTs are numbered 0 to 3)"));
    assert!(NumExprList::parse_cpts("0", 0).is_err());
}

#[test]
fn unbracketed_lists_of_cpus() {
    let values = |s: &str| {
        NumExprList::parse_unbracketed(s, 0, 63)
            .map(|l| l.map(|l| l.values().collect::<Vec<_>>()))
            .map_err(|e| e.to_string())
    };
    assert_eq!(values("0,2,4-7"), Ok(Some(vec![0, 2, 4, 5, 6, 7])));
    assert_eq!(values(" 0-7/2 , 0x9"), Ok(Some(vec![0, 2, 4, 6, 9])));
    assert_eq!(values("  "), Ok(None));
    let e = |s: &str| values(s).expect_err(s);
    assert!(e("*").contains("\"*\" is not allowed here"), "{}", e("*"));
    assert!(e("0,,1").contains("empty element"));
    assert!(e("3-1").contains("wrong order"));
    assert!(e("64").contains("out of range 0..63"));
    assert!(e("[0]").contains("not a number"));
}

#[test]
fn udsp_descriptors() {
    let d = |s: &str| NidDescr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    let tcp = d("tcp");
    assert!(tcp.matches_net(NetId::new(2, 0)) && !tcp.matches_net(NetId::new(2, 1)));
    assert!(tcp.matches_nid(&nid("1.2.3.4@tcp")) && !tcp.matches_nid(&nid("1.2.3.4@o2ib")));
    let r = d("tcp[1-3]");
    assert!(r.matches_net(NetId::new(2, 3)) && !r.matches_net(NetId::new(2, 0)));
    assert!(d("o2ib*").matches_net(NetId::new(5, 65535)));
    assert_eq!(d("tcp2").to_string(), "tcp2");
    let a = d("10.1.1.*@tcp");
    assert!(a.matches_nid(&nid("10.1.1.9@tcp")) && !a.matches_nid(&nid("10.1.2.9@tcp")));
    assert!(!a.matches_nid(&nid("10.1.1.9@tcp1")));
    assert_eq!(a.to_string(), "10.1.1.[0-255]@tcp");
    let g = d("[1-4]@gni[0,2]");
    assert!(
        g.matches_nid(&nid("3@gni2"))
            && !g.matches_nid(&nid("5@gni2"))
            && !g.matches_nid(&nid("3@gni1"))
    );
    assert_eq!(g.to_string(), "[1-4]@gni[0,2]");
    let e = |s: &str| {
        NidDescr::parse(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(e("foo").contains("known network type"));
    assert!(e("tcp[70000]").contains("out of range"));
    assert!(e("1.2.3@tcp").contains("four octets"));
    assert!(e("lo1").contains("takes no number"));
    assert!(e("@tcp").contains("empty"));
}

#[test]
fn networks_parameter() {
    let n = Networks::parse("tcp0(eth0,eth1)[0],o2ib1(ib0)").expect("parses");
    assert_eq!(n.entries.len(), 2);
    assert_eq!(n.to_string(), "tcp(eth0,eth1)[0],o2ib1(ib0)");
    let nets = n.nets();
    assert_eq!(nets[0].net, NetId::new(lnd_type::SOCKLND, 0));
    assert_eq!(nets[0].nis.len(), 2);
    assert_eq!(nets[0].nis[1].interface.as_deref(), Some("eth1"));
    assert_eq!(
        nets[0].nis[1]
            .cpts
            .as_ref()
            .map(|c| c.to_string())
            .as_deref(),
        Some("0")
    );
    assert_eq!(nets[1].net, NetId::new(lnd_type::O2IBLND, 1));
    assert_eq!(nets[1].nis[0].cpts, None);

    // semantics.md §15.1 example.
    let n = Networks::parse("tcp0(eth0,eth1),o2ib(ib0)[0,1]").expect("parses");
    let nets = n.nets();
    assert_eq!(
        nets[1].nis[0]
            .cpts
            .as_ref()
            .map(|c| c.values().collect::<Vec<_>>()),
        Some(vec![0, 1])
    );

    // Interface CPTs win over the net's; lo is dropped; a net given twice merges.
    let n =
        Networks::parse(" tcp ( eth0 [1] , eth1 ) [0-1] , lo, tcp(eth2), gni[3]").expect("parses");
    assert_eq!(n.to_string(), "tcp(eth0[1],eth1)[0-1],lo,tcp(eth2),gni[3]");
    let nets = n.nets();
    assert_eq!(nets.len(), 2);
    let cpts: Vec<String> = nets[0]
        .nis
        .iter()
        .map(|ni| ni.cpts.as_ref().map(|c| c.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(cpts, ["1", "[0-1]", ""]);
    assert_eq!(
        nets[1].nis,
        [NiSpec {
            interface: None,
            cpts: Some(NumExprList::parse("3").expect("3"))
        }]
    );
    assert!(n.check_cpts(4).is_ok());
    assert!(n
        .check_cpts(2)
        .expect_err("3 >= 2")
        .to_string()
        .contains("partition 3"));
    assert_eq!(
        Networks::parse("tcp,")
            .map(|n| n.to_string())
            .ok()
            .as_deref(),
        Some("tcp")
    );

    let e = |s: &str| {
        Networks::parse(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        e("tcp0(eth0,eth1)[0],o2ib1(ib0"),
        "invalid networks=\"tcp0(eth0,eth1)[0],o2ib1(ib0\": \"(\" after o2ib1 is not closed by \")\""
    );
    assert!(e("foo(eth0)").contains("unknown network type \"foo\""));
    assert!(e("tcp(eth0,eth0)").contains("interface eth0 is given twice for network tcp"));
    assert!(e("tcp(eth0),tcp(eth0)").contains("interface eth0 is given twice"));
    assert!(e("tcp()").contains("empty interface name"));
    assert!(e("tcp(eth0,)").contains("empty interface name"));
    assert!(e("tcp(eth 0)").contains("unexpected \"0\" after interface eth"));
    assert!(e("tcp[0").contains("not closed by \"]\""));
    assert!(e("tcp[x]").contains("CPT list \"[x]\" of tcp"));
    assert!(e("tcp[*]").contains("not allowed"));
    assert!(e("tcp(eth0)(eth1)").contains("unexpected \"(\" after tcp"));
    assert!(e("tcp junk").contains("unexpected \"junk\" after tcp"));
    assert!(e("tcp:1").contains("unexpected \":\""));
    assert!(e(",tcp").contains("expected a network name, found \",\""));
    assert!(e("<20:1>").contains("network \"<20:1>\" is not of a known type"));
    assert!(e("").contains("no networks"));
}

#[test]
fn ip2nets_parameter() {
    let s = "tcp(eth0) 192.168.0.* # office\n o2ib 10.[0-3].*.* 172.16.0.1; tcp1 10.0.0.*";
    let i = Ip2Nets::parse(s).expect("parses");
    assert_eq!(i.entries.len(), 3);
    assert_eq!(i.to_string(), "tcp(eth0) 192.168.0.[0-255]; o2ib 10.[0-3].[0-255].[0-255] 172.16.0.1; tcp1 10.0.0.[0-255]");
    assert_eq!(Ip2Nets::parse(&i.to_string()).ok(), Some(i.clone()));
    let a = |s: &str| s.parse::<Ipv4Addr>().expect("address");
    let sel = i.select(&[a("127.0.0.1"), a("10.0.0.5")]).expect("matches");
    assert_eq!(sel.to_string(), "o2ib,tcp1");
    let sel = i.select(&[a("192.168.0.9")]).expect("matches");
    assert_eq!(sel.to_string(), "tcp(eth0)");
    let e = i.select(&[a("8.8.8.8")]).expect_err("no match").to_string();
    assert!(e.contains("matches none of the local IPv4 addresses [8.8.8.8]"));
    let dup = Ip2Nets::parse("tcp(eth0) 10.*.*.*; tcp(eth0) 10.0.*.*").expect("parses");
    assert!(dup
        .select(&[a("10.0.0.1")])
        .expect_err("dup")
        .to_string()
        .contains("interface eth0 is given twice"));

    let e = |s: &str| {
        Ip2Nets::parse(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(e("tcp,tcp 10.*.*.*").contains("network tcp appears twice"));
    assert!(e("tcp").contains("has no IP address pattern"));
    assert!(e("tcp 10.*.*").contains("pattern \"10.*.*\""));
    assert!(e("tcp 10.*.*.300").contains("300 is out of range"));
    assert!(e("foo 10.*.*.*").contains("networks \"foo\""));
    assert!(e("# nothing").contains("no entries"));
    assert!(Ipv4Pattern::parse("10.0.[0-1].*")
        .expect("pattern")
        .matches(a("10.0.1.9")));
}

#[test]
fn routes_parameter() {
    let r = Routes::parse("o2ib1 1 192.168.0.[1-3]@tcp; tcp2 10.0.0.1@o2ib").expect("parses");
    assert_eq!(
        r.to_string(),
        "o2ib1 1 192.168.0.1@tcp; o2ib1 1 192.168.0.2@tcp; o2ib1 1 192.168.0.3@tcp; tcp2 10.0.0.1@o2ib"
    );
    assert_eq!(r.routes[3].hops, None);
    assert_eq!(r.routes[0].hops, Some(1));

    // semantics.md §15.3 example, plus priorities, brackets on nets and IPv6.
    let r = Routes::parse("o2ib1 1 10.0.0.[1-2]@tcp:0; tcp2 192.168.1.1@o2ib").expect("parses");
    assert_eq!(r.routes.len(), 3);
    let r = Routes::parse("o2ib[1-2] 3 10.0.0.1@tcp:5 fd00::1@tcp1:7\n# comment\ngni 1@kfi")
        .expect("parses");
    assert_eq!(
        r.to_string(),
        "o2ib1 3 10.0.0.1@tcp:5; o2ib1 3 fd00::1@tcp1:7; o2ib2 3 10.0.0.1@tcp:5; o2ib2 3 fd00::1@tcp1:7; gni 1@kfi"
    );
    assert_eq!(Routes::parse(&r.to_string()).ok(), Some(r));
    let r = Routes::parse("tcp[1,3] [a,b].0.0.1@o2ib")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(r.contains("\"a.0.0.1@o2ib\""), "{r}");
    let r = Routes::parse("tcp[1,3] 1.[2,3].0.[1-2]@o2ib").expect("parses");
    assert_eq!(
        r.routes
            .iter()
            .filter(|x| x.net == NetId::new(2, 1))
            .map(|x| x.gateway.to_string())
            .collect::<Vec<_>>(),
        [
            "1.2.0.1@o2ib",
            "1.2.0.2@o2ib",
            "1.3.0.1@o2ib",
            "1.3.0.2@o2ib"
        ]
    );

    let e = |s: &str| {
        Routes::parse(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        e("o2ib1 0 10.0.0.1@tcp"),
        "invalid routes=\"o2ib1 0 10.0.0.1@tcp\": entry \"o2ib1 0 10.0.0.1@tcp\": hop count \"0\" is not from 1 to 255"
    );
    assert!(e("o2ib1 256 10.0.0.1@tcp").contains("hop count \"256\""));
    assert!(e("o2ib1 1").contains("no gateway"));
    assert!(e("o2ib1").contains("no gateway"));
    assert!(e("lo 10.0.0.1@tcp").contains("loopback network"));
    assert!(e("o2ib 0@lo").contains("loopback NID"));
    assert!(e("o2ib <?>").contains("ANY NID"));
    assert!(e("o2ib 10.0.0.1@tcp:x").contains("priority \"x\""));
    assert!(e("o2ib 10.0.0.300@tcp").contains("address \"10.0.0.300\" is not an IPv4 address"));
    assert!(e("foo 10.0.0.1@tcp").contains("unknown network type \"foo\""));
    assert!(e("o2ib 10.0.0.[1-2@tcp").contains("not closed"));
    assert!(e("o2ib 10.0.0.[2-1]@tcp").contains("wrong order"));
    assert!(e("o2ib 10.0.0.[1-4/0]@tcp").contains("step"));
    assert!(e("o2ib 10.0.0.[1,,2]@tcp").contains("empty item"));
    assert!(e("o2ib[0-99] 10.0.[0-255].[0-255]@tcp").contains("more than 4096"));
    assert!(e("o2ib 1.1.[0-4294967295].1@tcp").contains("more than 4096"));
    assert!(e("").contains("no routes"));
}

#[test]
fn plugin_network_types_in_parameters() {
    let extra: &[(&str, u8)] = &[("vnd", 0xF0)];
    let n = Networks::parse_with("vnd(x0,x1)[0],tcp(eth0)", extra).expect("parses");
    assert_eq!(n.entries[0].net, NetId::new(0xF0, 0));
    assert_eq!(n.to_string(), "<240:0>(x0,x1)[0],tcp(eth0)");
    assert_eq!(Networks::parse_with(&n.to_string(), extra).ok(), Some(n));
    let e = Networks::parse("vnd(x0)")
        .expect_err("unknown without extra")
        .to_string();
    assert!(e.contains("unknown network type \"vnd\""), "{e}");
    let e = Networks::parse("<240:0>(x0)")
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("network \"<240:0>\" is not of a known type"),
        "{e}"
    );

    let r = Routes::parse_with("vnd[1-2] 5@vnd:3 10.0.0.1@tcp", extra).expect("parses");
    assert_eq!(
        r.to_string(),
        "<240:1> 5@<240:0>:3; <240:1> 10.0.0.1@tcp; <240:2> 5@<240:0>:3; <240:2> 10.0.0.1@tcp"
    );
    assert_eq!(Routes::parse_with(&r.to_string(), extra).ok(), Some(r));

    let i = Ip2Nets::parse_with("vnd(x0) 10.*.*.*; tcp 192.168.*.*", extra).expect("parses");
    let sel = i
        .select(&["10.1.1.1".parse().expect("address")])
        .expect("matches");
    assert_eq!(sel.entries[0].net, NetId::new(0xF0, 0));
}

// --- property tests -------------------------------------------------

fn any_nid() -> impl Strategy<Value = Nid> {
    let ip = (
        0usize..4,
        any::<u16>(),
        any::<u32>(),
        any::<[u8; 16]>(),
        any::<bool>(),
    )
        .prop_map(|(i, num, a4, a16, v6)| {
            let t = [
                lnd_type::SOCKLND,
                lnd_type::O2IBLND,
                lnd_type::EFALND,
                lnd_type::GNIIPLND,
            ][i];
            if v6 && t != lnd_type::GNIIPLND {
                Nid::new16(NetId::new(t, num), a16)
            } else {
                Nid::new4(NetId::new(t, num), a4)
            }
        });
    let num = (0usize..4, any::<u16>(), any::<u32>()).prop_map(|(i, num, a)| {
        let t = [
            lnd_type::GNILND,
            lnd_type::KFILND,
            lnd_type::PTL4LND,
            lnd_type::BXI3LND,
        ][i];
        Nid::new4(NetId::new(t, num), a)
    });
    prop_oneof![4 => ip, 2 => num, 1 => Just(Nid::LO_0), 1 => Just(Nid::ANY)]
}

fn expr_text(max: u32) -> impl Strategy<Value = String> {
    let one = prop_oneof![
        (0..=max).prop_map(|v| v.to_string()),
        (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (0..=max, 0..=max, 1..=max.max(1)).prop_map(|(a, b, s)| format!(
            "{}-{}/{s}",
            a.min(b),
            a.max(b)
        )),
        Just("*".to_owned()),
    ];
    prop_oneof![
        (0..=max).prop_map(|v| v.to_string()),
        Just("*".to_owned()),
        prop::collection::vec(one, 1..4).prop_map(|v| format!("[{}]", v.join(","))),
    ]
}

fn net_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "tcp", "o2ib", "efa", "gip", "gni", "kfi", "ptlf", "bxi3f", "lo",
        ]),
        0u16..4,
    )
        .prop_map(|(n, num)| {
            if n == "lo" || num == 0 {
                n.to_owned()
            } else {
                format!("{n}{num}")
            }
        })
}

fn nidlist_item() -> impl Strategy<Value = String> {
    (
        net_text(),
        any::<u8>(),
        expr_text(255),
        expr_text(255),
        expr_text(255),
        expr_text(255),
        expr_text(100_000),
        any::<[u8; 16]>(),
        any::<u32>(),
    )
        .prop_map(|(net, kind, a, b, c, d, n, v6, v4)| {
            let info = LndInfo::by_name(net.trim_end_matches(|c: char| c.is_ascii_digit()));
            let ip = info.is_some_and(|i| i.addr_format == AddrFormat::Ip);
            let v6ok = info.is_some_and(|i| i.ipv6);
            let addr = match kind % 5 {
                0 => "*".to_owned(),
                1 | 2 if ip => format!("{a}.{b}.{c}.{d}"),
                3 if ip => format!("{}/{}", Ipv4Addr::from(v4), 1 + kind % 32),
                4 if v6ok => format!("{}/{}", Ipv6Addr::from(v6), 1 + kind % 128),
                _ if ip => format!("{a}.{b}.{c}.{d}"),
                _ => n,
            };
            format!("{addr}@{net}")
        })
}

proptest! {
    #[test]
    fn process_id_display_parses_back(nid in any_nid(), pid in any::<u32>()) {
        let p = ProcessId::new(nid, pid);
        let s = p.to_string();
        prop_assert_eq!(s.parse::<ProcessId>().ok(), Some(p), "{}", s);
    }

    #[test]
    fn expr_list_display_parses_back(t in expr_text(1000)) {
        let l = NumExprList::parse_bounded(&t, 0, 1000).expect("generated lists are valid");
        prop_assert_eq!(NumExprList::parse_bounded(&l.to_string(), 0, 1000).ok(), Some(l.clone()));
        prop_assert_eq!(NumExprList::parse_bounded(&l.fmt_bracketed().to_string(), 0, 1000).ok(), Some(l));
    }

    #[test]
    fn expr_list_matches_exactly_its_values(t in expr_text(300), v in 0u32..=300) {
        let l = NumExprList::parse_bounded(&t, 0, 300).expect("generated lists are valid");
        prop_assert_eq!(l.matches(v), l.values().any(|x| x == v), "{} {}", t, v);
        prop_assert_eq!(l.values().count() as u64, l.count());
        prop_assert_eq!(l.values().max(), Some(l.max_value()));
    }

    #[test]
    fn ip2nets_display_parses_back(
        entries in prop::collection::vec(
            (prop::collection::vec(net_text(), 1..3), prop::collection::vec((expr_text(255), expr_text(255), expr_text(255), expr_text(255)), 1..3)),
            1..4,
        )
    ) {
        let text: Vec<String> = entries
            .iter()
            .map(|(nets, pats)| {
                let mut nets = nets.clone();
                nets.dedup();
                let pats: Vec<String> = pats.iter().map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")).collect();
                format!("{} {}", nets.join(","), pats.join(" "))
            })
            .collect();
        let text = text.join(";\n");
        match Ip2Nets::parse(&text) {
            Ok(i) => prop_assert_eq!(Ip2Nets::parse(&i.to_string()).ok(), Some(i), "{}", text),
            // The only refusal the generator can provoke: a net twice in an entry.
            Err(e) => prop_assert!(e.to_string().contains("appears twice"), "{}: {}", text, e),
        }
    }

    #[test]
    fn nidlist_display_parses_back(items in prop::collection::vec(nidlist_item(), 1..6)) {
        let text = items.join(" ");
        let l = NidList::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let s = l.to_string();
        prop_assert_eq!(NidList::parse(&s).ok(), Some(l), "{} -> {}", text, s);
    }

    #[test]
    fn nidlist_matches_what_it_expands_to(item in nidlist_item(), probe in any_nid()) {
        let l = NidList::parse(&item).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(nids) = l.expand(512) {
            prop_assert!(nids.iter().all(|n| l.matches(n)), "{}", item);
            if !nids.contains(&probe) {
                prop_assert!(!l.matches(&probe), "{} matches {}", item, probe);
            }
        }
    }

    #[test]
    fn networks_display_parses_back(
        entries in prop::collection::vec(
            (net_text(), prop::collection::vec(("[a-z]{1,4}[0-9]", prop::option::of(expr_text(7))), 0..3), prop::option::of(expr_text(7))),
            1..4,
        )
    ) {
        let text: Vec<String> = entries.iter().enumerate().map(|(k, (net, ifs, cpts))| {
            let mut s = net.clone();
            if !ifs.is_empty() {
                let ifs: Vec<String> = ifs.iter().enumerate().map(|(j, (n, c))| {
                    let c = c.as_ref().filter(|c| *c != "*").map(|c| if c.starts_with('[') { c.clone() } else { format!("[{c}]") });
                    format!("{n}x{k}y{j}{}", c.unwrap_or_default())
                }).collect();
                s += &format!("({})", ifs.join(","));
            }
            if let Some(c) = cpts.as_ref().filter(|c| *c != "*" && !c.contains('*')) {
                s += &if c.starts_with('[') { c.clone() } else { format!("[{c}]") };
            }
            s
        }).collect();
        let text = text.join(",");
        match Networks::parse(&text) {
            Ok(n) => prop_assert_eq!(Networks::parse(&n.to_string()).ok(), Some(n), "{}", text),
            // Only "*" inside an interface's CPT list is refused.
            Err(e) => prop_assert!(text.contains('*'), "{}: {}", text, e),
        }
    }

    #[test]
    fn routes_display_parses_back(
        routes in prop::collection::vec((any_nid(), 0usize..4, 0u16..3, prop::option::of(1u32..=255), any::<u32>()), 1..5)
    ) {
        let routes: Vec<RouteSpec> = routes
            .into_iter()
            .filter(|(g, ..)| !g.is_any() && g.net().lnd_type != lnd_type::LOLND)
            .map(|(gateway, t, num, hops, priority)| {
                let t = [lnd_type::SOCKLND, lnd_type::O2IBLND, lnd_type::GNILND, lnd_type::KFILND][t];
                RouteSpec { net: NetId::new(t, num), hops, gateway, priority }
            })
            .collect();
        prop_assume!(!routes.is_empty());
        let r = Routes { routes };
        let s = r.to_string();
        prop_assert_eq!(Routes::parse(&s).ok(), Some(r), "{}", s);
    }

    #[test]
    fn nid_descr_display_parses_back(
        addr in prop::option::of((expr_text(255), expr_text(255), expr_text(255), expr_text(255))),
        name in prop::sample::select(vec!["tcp", "o2ib", "gni", "kfi", "efa"]),
        nums in prop::option::of(expr_text(65535)),
    ) {
        let ip = LndInfo::by_name(name).is_some_and(|i| i.addr_format == AddrFormat::Ip);
        let a = addr.map(|(a, b, c, d)| if ip { format!("{a}.{b}.{c}.{d}@") } else { format!("{a}@") });
        let text = format!("{}{name}{}", a.unwrap_or_default(), nums.unwrap_or_default());
        let d = NidDescr::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(NidDescr::parse(&d.to_string()).ok(), Some(d), "{}", text);
    }

    #[test]
    fn parsers_never_panic(s in ".{0,60}") {
        let _ = s.parse::<ProcessId>();
        let _ = NumExprList::parse(&s);
        let _ = NidList::parse(&s).map(|l| l.expand(64));
        let _ = Networks::parse(&s).map(|n| n.nets());
        let _ = Ip2Nets::parse(&s).map(|i| i.select(&[Ipv4Addr::LOCALHOST]));
        let _ = Routes::parse(&s);
        let _ = NidDescr::parse(&s);
    }

    #[test]
    fn nidish_strings_never_panic(s in "[0-9a-f.:*@,/ ()\\[\\]<>?x;#-]{0,30}(tcp|o2ib|gni|lo|kfi)?[0-9]{0,3}") {
        let _ = s.parse::<ProcessId>();
        let _ = NumExprList::parse(&s);
        if let Ok(l) = NidList::parse(&s) {
            let _ = l.expand(64);
            prop_assert_eq!(NidList::parse(&l.to_string()).ok(), Some(l));
        }
        let _ = Networks::parse(&s);
        let _ = Ip2Nets::parse(&s);
        if let Ok(r) = Routes::parse(&s) {
            prop_assert_eq!(Routes::parse(&r.to_string()).ok(), Some(r));
        }
    }
}
