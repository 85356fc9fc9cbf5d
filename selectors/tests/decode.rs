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

/// A JPEG with an EXIF APP1 segment giving `orientation`, right after SOI.
fn with_orientation(jpeg: Vec<u8>, orientation: u8) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01]);
    tiff.extend_from_slice(&[0x00, orientation, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    let len = (2 + 6 + tiff.len()) as u16;
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b"Exif\x00\x00");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn a_large_jpeg_is_decoded_at_clip_size_with_its_true_size_reported() {
    // Left half red, right half blue, 1600x1200.
    let mut img = solid(1600, 1200, [220, 20, 20]);
    for (x, _, p) in img.enumerate_pixels_mut() {
        if x >= 800 {
            *p = image::Rgb([20, 20, 220]);
        }
    }
    let p = prep(jpeg(img.clone())).unwrap();
    assert_eq!((p.width, p.height), (1600, 1200), "the original's size");
    let (w, h) = (p.embed_image.width(), p.embed_image.height());
    assert_eq!(w.min(h), 224, "CLIP-sized: {w}x{h}");
    assert_eq!(w, 299);
    let left = px(&p, 40, 112);
    let right = px(&p, 260, 112);
    assert!(left[0] > 180 && left[2] < 70, "{left:?}");
    assert!(right[2] > 180 && right[0] < 70, "{right:?}");
    // The same picture as a PNG goes through the full decoder: the two agree.
    let full = prep(png(img)).unwrap();
    assert_eq!(
        (full.embed_image.width(), full.embed_image.height()),
        (w, h)
    );
    let distance = full.hash.dist(&p.hash);
    assert!(distance <= 4, "perceptual hashes differ by {distance} bits");
}

#[test]
fn a_large_rotated_jpeg_is_upright_at_clip_size() {
    let mut img = solid(1000, 600, [220, 20, 20]);
    for (_, y, p) in img.enumerate_pixels_mut() {
        if y >= 300 {
            *p = image::Rgb([20, 20, 220]);
        }
    }
    // Orientation 6: rotate 90° clockwise to view; the stored top (red) ends up on the right.
    let p = prep(with_orientation(jpeg(img), 6)).unwrap();
    assert_eq!((p.width, p.height), (600, 1000), "upright size");
    let (w, h) = (p.embed_image.width(), p.embed_image.height());
    assert!(h > w && w == 224, "{w}x{h}");
    let right = px(&p, w - 20, h / 2);
    let left = px(&p, 20, h / 2);
    assert!(
        right[0] > 180 && right[2] < 70,
        "red on the right: {right:?}"
    );
    assert!(left[2] > 180 && left[0] < 70, "blue on the left: {left:?}");
}
