//! Finding ONNX Runtime (its own test binary, because it clears ORT_DYLIB_PATH for the whole
//! process and loads the library once).

mod common;

use iat2i_selectors::{ClipEmbedder, Embedder, OrtSearch};

#[tokio::test]
async fn onnx_runtime_is_found_in_a_python_wheel_and_a_miss_says_what_was_tried() {
    let real = std::env::var_os("ORT_DYLIB_PATH").map(std::path::PathBuf::from);
    // SAFETY: the only test in this binary; no other thread reads the environment yet.
    unsafe { std::env::remove_var("ORT_DYLIB_PATH") };
    let empty = tempfile::tempdir().unwrap();
    let msg = ClipEmbedder::from_dir(common::tiny_model())
        .with_ort_search(OrtSearch::in_dirs([empty.path()]))
        .embed_texts(vec!["a fox".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ORT_DYLIB_PATH (not set)"), "{msg}");
    assert!(msg.contains(&empty.path().display().to_string()), "{msg}");
    assert!(msg.contains("`pip install onnxruntime==1.31.1`"), "{msg}");
    assert!(msg.contains("scripts/setup-ort.sh"), "{msg}");

    // Installed as the `onnxruntime` wheel: site-packages/onnxruntime/capi/libonnxruntime.so.*
    let Some(real) = real.filter(|p| p.is_file()) else {
        common::skip_or_fail("ORT_DYLIB_PATH is unset, so the wheel layout could not be tried");
        return;
    };
    let site = tempfile::tempdir().unwrap();
    let capi = site.path().join("onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    std::os::unix::fs::symlink(&real, capi.join("libonnxruntime.so.1.31.1")).unwrap();
    let vectors = ClipEmbedder::from_dir(common::tiny_model())
        .with_ort_search(OrtSearch::in_dirs([empty.path(), capi.as_path()]))
        .embed_texts(vec!["a fox".into()])
        .await
        .unwrap();
    assert_eq!(vectors.len(), 1);
}
