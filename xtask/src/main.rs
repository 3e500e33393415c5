mod manifest;
mod resolve;
mod version;

fn main() {}
