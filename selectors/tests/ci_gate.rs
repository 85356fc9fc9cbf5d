//! Under `CI=true` a test that cannot run (no ONNX Runtime, no ../shared) fails instead of
//! passing as skipped (its own test binary, because it sets CI).

mod common;

#[test]
fn a_missing_prerequisite_fails_under_ci_and_skips_elsewhere() {
    // SAFETY: the only test in this binary; no other thread reads the environment.
    unsafe { std::env::set_var("CI", "true") };
    let failed = std::panic::catch_unwind(|| common::skip_or_fail("ONNX Runtime is absent"));
    let msg = failed.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("CI=true") && msg.contains("ONNX Runtime is absent"),
        "{msg}"
    );

    unsafe { std::env::remove_var("CI") };
    assert!(std::panic::catch_unwind(|| common::skip_or_fail("ONNX Runtime is absent")).is_ok());

    // With `make test`'s set-up (ONNX Runtime in .tools, ../shared beside the clone) both
    // prerequisites are found, so the CLIP tests really run.
    if common::in_ci() || std::env::var_os("ORT_DYLIB_PATH").is_some() {
        assert!(common::ort_available());
    }
}
