//! Compiles the web app's built files (`frontends/assets/web`, made by `web/build.mjs`) into
//! the binary: a table of their paths and bytes in `OUT_DIR/web_files.rs`, made again whenever
//! a file in that directory changes, appears or goes. Hidden files (an editor's) are left out;
//! without the directory girok builds with no web app, and says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            files_under(&path, found)?;
        } else {
            found.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("assets/web");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        files_under(&root, &mut files)?;
    } else {
        println!(
            "cargo:warning=no {}: this build of girok has no web app (scripts/web.sh build)",
            root.display()
        );
    }
    files.sort();
    let mut table = String::from("pub(crate) const FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let name = file
            .strip_prefix(&root)?
            .to_str()
            .ok_or("a web asset's name is not UTF-8")?
            .replace(std::path::MAIN_SEPARATOR, "/");
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            file.display().to_string()
        )?;
    }
    table.push_str("];\n");
    std::fs::write(
        Path::new(&std::env::var("OUT_DIR")?).join("web_files.rs"),
        table,
    )?;
    Ok(())
}
