//! `normalize_loop` with mimalloc, the allocator of the `gateway` binary, as the global
//! allocator: `target/release/examples/normalize_loop_mimalloc [ITERATIONS] [MODE]`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "normalize_loop.rs"]
mod normalize_loop;

fn main() {
    normalize_loop::main();
}
