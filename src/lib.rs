//! iat2i: internet-augmented text-to-image generation.
//!
//! (The pipeline lands here; see DESIGN.md.)

pub use iat2i_retrievers as retrievers;
pub use iat2i_selectors as selectors;
