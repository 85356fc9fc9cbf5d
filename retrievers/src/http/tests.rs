use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use url::Url;

use super::body::parse_retry_after;
use super::error::body_snippet;
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn refuses_every_private_ipv4_class() {
    let refused = [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("192.0.2.10", "documentation"),
        ("198.51.100.1", "documentation"),
        ("203.0.113.7", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "IETF"),
    ];
    for (addr, word) in refused {
        let why = blocked_reason(ip(addr)).unwrap_or_else(|| panic!("{addr} allowed"));
        assert!(why.contains(word), "{addr}: {why}");
    }
}

#[test]
fn allows_public_ipv4_next_to_refused_ranges() {
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "11.0.0.1",
        "198.20.0.1",
        "223.255.255.255",
    ] {
        assert_eq!(blocked_reason(ip(addr)), None, "{addr}");
    }
}

#[test]
fn refuses_every_private_ipv6_class() {
    let refused = [
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fd00:ec2::254", "metadata"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "Teredo"),
        ("64:ff9b:1::1", "NAT64"),
        ("100::1", "discard"),
    ];
    for (addr, word) in refused {
        let why = blocked_reason(ip(addr)).unwrap_or_else(|| panic!("{addr} allowed"));
        assert!(why.contains(word), "{addr}: {why}");
    }
}

#[test]
fn refuses_ipv6_forms_of_refused_ipv4() {
    for addr in [
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "::127.0.0.1",
        "::192.168.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "2002:c0a8:101::",
    ] {
        let why = blocked_reason(ip(addr)).unwrap_or_else(|| panic!("{addr} allowed"));
        assert!(why.contains("IPv6 form"), "{addr}: {why}");
    }
    for addr in [
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2606:4700::1111",
    ] {
        assert_eq!(blocked_reason(ip(addr)), None, "{addr}");
    }
}

#[test]
fn check_url_looks_at_ip_literals_and_schemes() {
    let policy = SsrfPolicy::default();
    let refused = [
        "http://127.0.0.1/",
        "http://[::1]:8080/x",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://017700000001/",
        "http://10.0.0.1./",
        "file:///etc/passwd",
        "ftp://example.org/x",
        "gopher://example.org/",
    ];
    for u in refused {
        let url = Url::parse(u).unwrap();
        assert!(policy.check_url(&url).is_err(), "{u} allowed");
    }
    for u in ["https://example.org/a.jpg", "http://93.184.216.34/x"] {
        assert!(policy.check_url(&Url::parse(u).unwrap()).is_ok(), "{u}");
    }
}

#[test]
fn allow_hosts_and_disabled_let_private_hosts_through() {
    let policy = SsrfPolicy::default()
        .allow_host("127.0.0.1")
        .allow_host("[::1]")
        .allow_host("SearXNG.lan");
    assert!(
        policy
            .check_url(&Url::parse("http://127.0.0.1:9/").unwrap())
            .is_ok()
    );
    assert!(
        policy
            .check_url(&Url::parse("http://[::1]:9/").unwrap())
            .is_ok()
    );
    assert!(policy.check_addr("searxng.lan", ip("192.168.1.5")).is_ok());
    assert!(policy.check_addr("other.lan", ip("192.168.1.5")).is_err());
    assert!(
        policy
            .check_url(&Url::parse("http://127.0.0.2/").unwrap())
            .is_err()
    );
    let off = SsrfPolicy {
        disabled: true,
        ..SsrfPolicy::default()
    };
    assert!(
        off.check_url(&Url::parse("http://10.0.0.1/").unwrap())
            .is_ok()
    );
}

#[test]
fn retry_after_accepts_seconds_and_http_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    // Wed, 21 Oct 2015 07:28:00 GMT is 1_445_412_480; ten seconds later:
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
}

#[test]
fn redact_and_snippets_hide_keys() {
    let url = Url::parse("https://u:p@api.example/v1/x?key=SECRET123&q=cat#frag").unwrap();
    let r = redact(&url);
    assert_eq!(r, "https://api.example/v1/x");
    let body = b"bad request for /v1/x?key=SECRET123&q=cat: key SECRET123 invalid";
    let s = body_snippet(body, &url);
    assert!(!s.contains("SECRET123"), "{s}");
    assert!(s.contains("invalid"));
}

#[test]
fn a_google_retry_info_in_the_body_is_the_wait() {
    use super::body::rpc_retry_delay;
    let pretty = r#"{
  "error": {
    "code": 429,
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "37s"
      }
    ]
  }
}"#;
    assert_eq!(rpc_retry_delay(pretty), Some(Duration::from_secs(37)));
    let compact = r#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#;
    assert_eq!(rpc_retry_delay(compact), Some(Duration::from_millis(1500)));
    // No RetryInfo, a broken value, or a body cut before the value: no wait.
    assert_eq!(rpc_retry_delay(r#"{"retryDelay": "37s"}"#), None);
    let broken = r#"{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"soon"}"#;
    assert_eq!(rpc_retry_delay(broken), None);
    let cut = r#"{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDel"#;
    assert_eq!(rpc_retry_delay(cut), None);
    let negative = r#"{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"-3s"}"#;
    assert_eq!(rpc_retry_delay(negative), None);
}

#[test]
fn scrub_reaches_every_text_of_every_variant() {
    const KEY: &str = "AIzaSy-secret-key-123";
    let with_key = format!("echo {KEY} echo");
    let mut errors = vec![
        HttpError::Refused {
            url: with_key.clone(),
            reason: with_key.clone(),
        },
        HttpError::Status {
            url: with_key.clone(),
            status: reqwest::StatusCode::BAD_GATEWAY,
            body: with_key.clone(),
            retry_after: None,
        },
        HttpError::Timeout {
            url: with_key.clone(),
            after: Duration::from_secs(1),
        },
        HttpError::TooLarge {
            url: with_key.clone(),
            limit: 1,
        },
        HttpError::Transport {
            url: with_key.clone(),
            message: with_key.clone(),
        },
        HttpError::Config(with_key.clone()),
    ];
    let wrapped = HttpError::NotRetried {
        source: Box::new(HttpError::NotRetried {
            source: Box::new(HttpError::Transport {
                url: with_key.clone(),
                message: with_key.clone(),
            }),
        }),
    };
    errors.push(wrapped);
    for mut e in errors {
        e.scrub(KEY);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
