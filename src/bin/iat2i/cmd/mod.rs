//! One module per subcommand, each with its `Args` and its `main`.

pub mod batch;
pub mod evaluate;
pub mod generate;
pub mod memory;
pub mod search;
pub mod select;
pub mod serve;
