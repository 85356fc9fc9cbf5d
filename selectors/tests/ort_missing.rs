//! Without ONNX Runtime the embedder fails with instructions (its own test binary, because it
//! clears ORT_DYLIB_PATH for the whole process).

use iat2i_selectors::{ClipEmbedder, Embedder};

#[tokio::test]
async fn missing_onnx_runtime_names_the_variable_and_the_wheel() {
    // SAFETY: the only test in this binary; no other thread reads the environment yet.
    unsafe { std::env::remove_var("ORT_DYLIB_PATH") };
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/tiny-clip");
    let msg = ClipEmbedder::from_dir(dir)
        .embed_texts(vec!["a fox".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
    assert!(msg.contains("pip install onnxruntime==1.31.1"), "{msg}");
    assert!(msg.contains("scripts/setup-ort.sh"), "{msg}");
}
