//! Embeds the web app (`web/dist`, built by `scripts/web.sh`) in the broker binary, each file
//! with a gzip copy made here, so every node serves the app with nothing beside it. Without a
//! built `web/dist` the broker still builds, and says at `/` how to build the app.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = std::env::var("PLEXUS_WEB_DIST").map(PathBuf::from).unwrap_or_else(|_| manifest.join("../web/dist"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=PLEXUS_WEB_DIST");
    println!("cargo:rerun-if-changed={}", dist.display());

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    } else {
        println!(
            "cargo:warning=web/dist is not built: this broker will not serve the web app (run scripts/web.sh, then build again)"
        );
    }
    files.sort();
    let mut code = String::from("/// Files of the web app: (URL path, content type, body, gzipped body).\n");
    code.push_str("pub(crate) static ASSETS: &[(&str, &str, &[u8], &[u8])] = &[\n");
    for (i, rel) in files.iter().enumerate() {
        let path = dist.join(rel);
        let body = std::fs::read(&path).expect("read a web asset");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&body).expect("gzip a web asset");
        let gz_path = out.join(format!("asset-{i}.gz"));
        std::fs::write(&gz_path, gz.finish().expect("gzip a web asset")).expect("write a gzipped asset");
        let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
        writeln!(
            code,
            "    ({url:?}, {:?}, include_bytes!({:?}), include_bytes!({:?})),",
            content_type(rel),
            path.canonicalize().expect("asset path").display().to_string(),
            gz_path.display().to_string()
        )
        .expect("write to a string");
    }
    code.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), code).expect("write web_assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read web/dist").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.push(rel.to_path_buf());
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}
