//! Prints the README's settings table, generated from `src/config/defs.rs`
//! (`cargo run --example settings_table`); paste it between the README's markers, or run
//! `UPDATE_README=1 cargo test --lib config::defs` to rewrite that section in place.

fn main() {
    print!("{}", celery_scaler::config::defs::markdown_table());
}
