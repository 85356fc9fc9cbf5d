//! Decoding hostile and unusual images: sniffing, limits, orientation, colour models.

mod common;

use bytes::Bytes;
use common::*;
use iat2i_selectors::{FetchConfig, prepare_image};

fn prep(bytes: Vec<u8>) -> Result<iat2i_selectors::PreparedImage, String> {
    prepare_image(Bytes::from(bytes), None, &FetchConfig::default())
}

fn px(p: &iat2i_selectors::PreparedImage, x: u32, y: u32) -> [u8; 3] {
    p.embed_image.to_rgb8().get_pixel(x, y).0
}

#[test]
fn exif_orientation_is_applied() {
    let p = prep(fixture("exif_rotated.jpg")).unwrap();
    assert_eq!(
        (p.width, p.height),
        (64, 96),
        "orientation 6 turns 96x64 upright"
    );
    assert_eq!(
        p.mime, "image/jpeg",
        "JPEG bytes are passed on as they came"
    );
    let right = px(&p, 60, 48);
    let left = px(&p, 4, 48);
    assert!(
        right[0] > 150 && right[1] < 100,
        "stored top rows end up on the right: {right:?}"
    );
    assert!(left[1] > 150 && left[0] < 100, "{left:?}");
}

#[test]
fn cmyk_jpeg_is_converted_to_rgb() {
    let p = prep(fixture("cmyk.jpg")).unwrap();
    assert_eq!((p.width, p.height), (96, 64));
    let left = px(&p, 10, 32);
    let right = px(&p, 86, 32);
    assert!(left[0] > 150 && left[2] < 110, "left half red: {left:?}");
    assert!(
        right[2] > 150 && right[0] < 110,
        "right half blue: {right:?}"
    );
}

#[test]
fn animated_gif_uses_the_first_frame_and_is_reencoded_as_png() {
    let p = prep(animated_gif(solid(80, 60, [250, 250, 0]))).unwrap();
    assert_eq!(p.mime, "image/png");
    assert_eq!(
        image::guess_format(&p.bytes).unwrap(),
        image::ImageFormat::Png
    );
    assert_eq!(
        px(&p, 40, 30),
        [250, 250, 0],
        "first frame, not the black second one"
    );
}

#[test]
fn grey_alpha_webp_and_bmp_decode() {
    let grey = prep(grey_png(1, 100, 80)).unwrap();
    assert_eq!(grey.mime, "image/png");
    let alpha = prep(alpha_png(2, 100, 80)).unwrap();
    assert_eq!(
        px(&alpha, 1, 1),
        [255, 255, 255],
        "transparent corners flattened on white"
    );
    let webp = prep(webp(scene(3, 90, 70))).unwrap();
    assert_eq!((webp.mime.as_str(), webp.width), ("image/webp", 90));
    let bmp = prep(bmp(scene(4, 90, 70))).unwrap();
    assert_eq!(bmp.mime, "image/png", "BMP is re-encoded for generators");
}

#[test]
fn a_header_claiming_fifty_thousand_pixels_square_is_refused() {
    let bomb = png_bomb();
    assert!(bomb.len() < 200);
    let err = prep(bomb).unwrap_err();
    assert!(err.contains("refused Png"), "{err}");
}

#[test]
fn truncated_and_non_images_are_reported() {
    let mut full = jpeg(scene(5, 200, 150));
    full.truncate(full.len() / 3);
    let err = prep(full).unwrap_err();
    assert!(err.contains("broken Jpeg"), "{err}");
    let err = prep(b"<html><body>Access denied</body></html>".to_vec()).unwrap_err();
    assert!(err.contains("HTML page"), "{err}");
    let err = prep(b"just some text".to_vec()).unwrap_err();
    assert!(err.contains("not a recognised image format"), "{err}");
}
