//! Test pictures shared by the selection benchmarks.

use std::io::Cursor;

use iat2i_selectors::image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A distinct `w`x`h` JPEG per seed: random coloured rectangles on a random background.
pub fn picture(seed: u64, w: u32, h: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |m: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(m.max(1))) as u32
    };
    let bg = Rgb([next(256) as u8, next(256) as u8, next(256) as u8]);
    let mut img = RgbImage::from_pixel(w, h, bg);
    for _ in 0..12 {
        let (x0, y0) = (next(w), next(h));
        let (x1, y1) = ((x0 + 40 + next(200)).min(w), (y0 + 40 + next(150)).min(h));
        let c = Rgb([next(256) as u8, next(256) as u8, next(256) as u8]);
        for y in y0..y1 {
            for x in x0..x1 {
                img.put_pixel(x, y, c);
            }
        }
    }
    let mut out = Cursor::new(Vec::new());
    let _ = DynamicImage::ImageRgb8(img).write_to(&mut out, ImageFormat::Jpeg);
    out.into_inner()
}
