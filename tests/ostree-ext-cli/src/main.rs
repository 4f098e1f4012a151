//! The real ostree-ext command line, for the test suite: `ostree-ext-cli
//! container encapsulate|image pull|image deploy …` is exactly what
//! `ostree container …` runs on a host with rpm-ostree's ext command.

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(ostree_ext::cli::run_from_iter(std::env::args_os()))
}
