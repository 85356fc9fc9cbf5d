//! Failure classes: every HTTP variant, provider bodies, refusals and waits.

use super::*;
use reqwest::StatusCode;

fn status(code: u16, body: &str) -> HttpError {
    HttpError::Status {
        url: "http://x/v1/images/generations".into(),
        status: StatusCode::from_u16(code).unwrap(),
        body: body.into(),
        retry_after: None,
    }
}

fn gemini(name: &str) -> String {
    let path = format!("{}/fixtures/generators/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap()
}

fn url() -> String {
    "http://x/v1/images/generations".into()
}

#[test]
fn http_statuses_map_to_classes() {
    assert_eq!(classify_http(&status(401, "")), ErrorClass::Auth);
    assert_eq!(classify_http(&status(403, "")), ErrorClass::Auth);
    assert_eq!(classify_http(&status(402, "")), ErrorClass::Quota);
    assert_eq!(
        classify_http(&status(429, "slow down")),
        ErrorClass::RateLimited
    );
    let quota = r#"{"error":{"code":"insufficient_quota","type":"insufficient_quota"}}"#;
    assert_eq!(classify_http(&status(429, quota)), ErrorClass::Quota);
    let openai_rate = r#"{"error":{"message":"Rate limit reached for gpt-image-1 in organization org-x on requests per min (RPM): Limit 5, Used 5, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    assert_eq!(
        classify_http(&status(429, openai_rate)),
        ErrorClass::RateLimited
    );
    let safety =
        r#"{"error":{"code":"moderation_blocked","message":"rejected by the safety system"}}"#;
    assert_eq!(classify_http(&status(400, safety)), ErrorClass::Safety);
    for code in [400, 404, 405, 409, 410, 413, 415, 422] {
        assert_eq!(
            classify_http(&status(code, "bad size")),
            ErrorClass::InvalidRequest,
            "{code}"
        );
    }
    for code in [408, 504] {
        assert_eq!(classify_http(&status(code, "")), ErrorClass::Timeout);
    }
    for code in [500, 502, 503, 529] {
        assert_eq!(classify_http(&status(code, "")), ErrorClass::Unavailable);
    }
    assert_eq!(classify_http(&status(302, "")), ErrorClass::Internal);
}

#[test]
fn every_other_http_variant_has_its_class() {
    let timeout = HttpError::Timeout {
        url: url(),
        after: Duration::from_secs(1),
    };
    assert_eq!(classify_http(&timeout), ErrorClass::Timeout);
    let transport = HttpError::Transport {
        url: url(),
        message: "connection reset by peer".into(),
    };
    assert_eq!(classify_http(&transport), ErrorClass::Unavailable);
    let too_large = HttpError::TooLarge {
        url: url(),
        limit: 10,
    };
    assert_eq!(classify_http(&too_large), ErrorClass::InvalidRequest);
    let refused = HttpError::Refused {
        url: url(),
        reason: "loopback".into(),
    };
    assert_eq!(classify_http(&refused), ErrorClass::InvalidRequest);
    let config = HttpError::Config("bad URL".into());
    assert_eq!(classify_http(&config), ErrorClass::Internal);
}

#[test]
fn a_paid_call_not_retried_keeps_the_class_of_its_failure() {
    let wrap = |e: HttpError| HttpError::NotRetried {
        source: Box::new(e),
    };
    assert_eq!(
        classify_http(&wrap(status(502, ""))),
        ErrorClass::Unavailable
    );
    assert!(classify_http(&wrap(status(503, ""))).is_transient());
    let timeout = HttpError::Timeout {
        url: url(),
        after: Duration::from_secs(1),
    };
    assert_eq!(classify_http(&wrap(timeout)), ErrorClass::Timeout);
    let dropped = HttpError::Transport {
        url: url(),
        message: "connection closed before message completed".into(),
    };
    assert_eq!(classify_http(&wrap(dropped)), ErrorClass::Unavailable);
    let image = ImageError::Http {
        endpoint: "gemini".into(),
        source: wrap(status(500, "")),
    };
    assert_eq!(image.class(), ErrorClass::Unavailable);
}

#[test]
fn gemini_error_bodies_decide_the_class() {
    let cases = [
        (400, "gemini_error_api_key_invalid.json", ErrorClass::Auth),
        (429, "gemini_error_429_rate.json", ErrorClass::RateLimited),
        (
            429,
            "gemini_error_429_free_tier_zero.json",
            ErrorClass::Quota,
        ),
        (429, "gemini_error_429_credits.json", ErrorClass::Quota),
        (503, "gemini_error_503.json", ErrorClass::Unavailable),
    ];
    for (code, fixture, want) in cases {
        assert_eq!(
            classify_http(&status(code, &gemini(fixture))),
            want,
            "{fixture}"
        );
    }
}

#[test]
fn refusals_timeouts_and_node_failures_are_not_internal() {
    let refused = ImageError::Refused {
        endpoint: "gemini".into(),
        kind: crate::generator::RefusalKind::PromptBlocked,
        reason: "SAFETY".into(),
        text: None,
        usage: None,
    };
    assert_eq!(refused.class(), ErrorClass::Safety);
    let timeout = ImageError::Timeout {
        endpoint: "comfy".into(),
        after: Duration::from_secs(1),
        detail: "interrupted".into(),
    };
    assert_eq!(timeout.class(), ErrorClass::Timeout);
    let node = ImageError::Node {
        endpoint: "comfy".into(),
        node: "4".into(),
        class_type: "CheckpointLoaderSimple".into(),
        message: "Value not in list".into(),
        failure: crate::generator::NodeFailure::Invalid,
    };
    assert_eq!(node.class(), ErrorClass::InvalidRequest);
}

#[test]
fn the_servers_wait_survives_every_wrapper() {
    let mut e = status(429, "");
    if let HttpError::Status { retry_after, .. } = &mut e {
        *retry_after = Some(Duration::from_secs(37));
    }
    let e = HttpError::NotRetried {
        source: Box::new(e),
    };
    let stage = StageError::Image(ImageError::Http {
        endpoint: "gemini".into(),
        source: e,
    });
    assert_eq!(stage.retry_after(), Some(Duration::from_secs(37)));
    let lmm = LmmError::Http {
        endpoint: "chat".into(),
        source: status(503, ""),
    };
    assert_eq!(lmm.retry_after(), None);
}

#[test]
fn names_round_trip_and_policy_flags() {
    for c in ErrorClass::ALL {
        assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"{}\"", c.as_str()));
    }
    assert!(ErrorClass::Auth.is_fatal() && ErrorClass::Quota.is_fatal());
    assert!(!ErrorClass::RateLimited.is_fatal() && ErrorClass::RateLimited.is_transient());
    assert!(!ErrorClass::Timeout.is_transient());
}
