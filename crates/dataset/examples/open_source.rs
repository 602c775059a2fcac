//! Opens a source as every stage does (`Dataset::open`) and says how many rows it found and
//! how long that took, with nothing decoded: the open half of `tools/bench_sources.sh`.
//!
//!     cargo run -p imgclf-dataset --example open_source -- DATA

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::args().nth(1).ok_or("usage: open_source DATA")?;
    let start = std::time::Instant::now();
    let dataset = imgclf_dataset::Dataset::open(&data)?;
    let rows: usize = dataset.splits.iter().map(|s| s.samples.len()).sum();
    println!("{rows} rows in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
