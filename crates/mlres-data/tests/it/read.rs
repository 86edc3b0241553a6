//! Readers: every format, split resolution, and malformed input as counted skips or clear
//! errors, never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};

use mlres_data::read::{self, Format, ReadError};
use serde_json::json;

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mlres-data-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn rows(path: &Path) -> (Vec<mlres_data::Record>, Vec<read::RowError>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for r in read::open(path).unwrap() {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

/// Writes a snappy parquet file with a UTF-8 `text` column and an INT64 `label` column.
pub fn write_parquet(path: &Path, texts: &[&str], labels: &[i64]) {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message schema { REQUIRED BYTE_ARRAY text (UTF8); REQUIRED INT64 label; }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut i = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        if i == 0 {
            let v: Vec<ByteArray> = texts.iter().map(|t| ByteArray::from(*t)).collect();
            col.typed::<ByteArrayType>()
                .write_batch(&v, None, None)
                .unwrap();
        } else {
            col.typed::<Int64Type>()
                .write_batch(labels, None, None)
                .unwrap();
        }
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

#[test]
fn jsonl_json_csv_and_parquet_read_the_same_rows() {
    let t = tmp();
    let d = t.path();
    std::fs::write(
        d.join("a.jsonl"),
        "{\"text\": \"x\", \"label\": 1}\n\n{\"text\": \"y\", \"label\": 0}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("a.json"),
        " [ {\"text\": \"x\", \"label\": 1} ,\n{\"text\": \"y\", \"label\": 0}]",
    )
    .unwrap();
    std::fs::write(d.join("a.csv"), "text,label\nx,1\ny,0\n").unwrap();
    write_parquet(&d.join("a.parquet"), &["x", "y"], &[1, 0]);
    for f in ["a.jsonl", "a.json", "a.parquet"] {
        let (ok, bad) = rows(&d.join(f));
        assert!(bad.is_empty(), "{f}: {bad:?}");
        assert_eq!(ok.len(), 2, "{f}");
        assert_eq!(ok[0]["text"], "x", "{f}");
        assert_eq!(ok[1]["label"], 0, "{f}");
    }
    // CSV cells are strings.
    let (ok, bad) = rows(&d.join("a.csv"));
    assert!(bad.is_empty());
    assert_eq!(ok[1]["label"], "0");
    assert_eq!(
        Format::from_path(Path::new("x/Y.PARQUET")),
        Some(Format::Parquet)
    );
}

#[test]
fn a_broken_json_line_is_a_counted_skip_with_its_line_number() {
    let t = tmp();
    let p = t.path().join("d.jsonl");
    std::fs::write(&p, "{\"a\": 1}\n{\"a\": \n[1, 2]\n{\"a\": 3}\n\"str\"\n").unwrap();
    let (ok, bad) = rows(&p);
    assert_eq!(ok.len(), 2);
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert_eq!(bad[0].row, 2);
    assert!(bad[0].message.contains("invalid JSON"), "{bad:?}");
    assert_eq!(bad[1].row, 3);
    assert!(bad[1].message.contains("not a JSON object"), "{bad:?}");
    assert_eq!(bad[2].row, 5);
}

#[test]
fn non_utf8_bytes_are_a_counted_skip_in_every_text_format() {
    let t = tmp();
    let d = t.path();
    std::fs::write(
        d.join("b.jsonl"),
        b"{\"a\": \"\xff\xfe\"}\n{\"a\": \"ok\"}\n",
    )
    .unwrap();
    let (ok, bad) = rows(&d.join("b.jsonl"));
    assert_eq!((ok.len(), bad.len()), (1, 1));
    assert!(bad[0].message.contains("UTF-8"));
    std::fs::write(d.join("b.csv"), b"a,b\n\xff,1\nok,2\n").unwrap();
    let (ok, bad) = rows(&d.join("b.csv"));
    assert_eq!((ok.len(), bad.len()), (1, 1), "{bad:?}");
    assert!(bad[0].message.contains("UTF-8"));
    std::fs::write(d.join("b.json"), b"[{\"a\": \"\xff\"}, {\"a\": 1}]").unwrap();
    let (ok, bad) = rows(&d.join("b.json"));
    assert_eq!((ok.len(), bad.len()), (1, 1), "{bad:?}");
}

#[test]
fn a_ragged_csv_row_is_skipped_and_named() {
    let t = tmp();
    let p = t.path().join("r.csv");
    std::fs::write(&p, "a,b,c\n1,2,3\n4,5\n6,7,8,9\n\"unterminated,1,2\n").unwrap();
    let (ok, bad) = rows(&p);
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert!(bad.len() >= 2, "{bad:?}");
    assert_eq!(bad[0].row, 3);
    assert!(bad[0].message.contains("ragged"), "{bad:?}");
    assert_eq!(bad[1].row, 4);
}

#[test]
fn a_truncated_or_fake_parquet_file_is_a_clear_error() {
    let t = tmp();
    let good = t.path().join("g.parquet");
    write_parquet(&good, &["a", "b", "c"], &[1, 2, 3]);
    let bytes = std::fs::read(&good).unwrap();
    for cut in [0, 4, bytes.len() / 2, bytes.len() - 1] {
        let p = t.path().join(format!("cut{cut}.parquet"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        match read::open(&p) {
            Err(ReadError::Invalid { message, .. }) => {
                assert!(message.contains("parquet"), "{message}")
            }
            Err(e) => panic!("unexpected error kind: {e}"),
            // A cut that keeps the footer readable must still end in a counted error.
            Ok(it) => {
                let errs = it.filter(|r| r.is_err()).count();
                assert!(errs > 0, "cut at {cut} read cleanly");
            }
        }
    }
    let p = t.path().join("fake.parquet");
    std::fs::write(&p, "text,label\n").unwrap();
    let e = read::open(&p)
        .err()
        .expect("a CSV named .parquet is refused");
    assert!(e.to_string().contains("not a readable parquet file"), "{e}");
}

#[test]
fn corrupt_bytes_inside_a_parquet_file_end_in_an_error_or_rows_never_a_panic() {
    let t = tmp();
    let good = t.path().join("g.parquet");
    let texts: Vec<String> = (0..200).map(|i| format!("text number {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let labels: Vec<i64> = (0..200).collect();
    write_parquet(&good, &refs, &labels);
    let bytes = std::fs::read(&good).unwrap();
    // Overwrite a run of bytes at positions across pages, page headers and the footer.
    for (k, at) in (4..bytes.len() - 8).step_by(bytes.len() / 40).enumerate() {
        let mut bad = bytes.clone();
        for (j, b) in bad[at..(at + 6).min(bytes.len() - 8)]
            .iter_mut()
            .enumerate()
        {
            *b ^= 0x5a ^ (j as u8);
        }
        let p = t.path().join(format!("bad{k}.parquet"));
        std::fs::write(&p, &bad).unwrap();
        match read::open(&p) {
            Err(ReadError::Invalid { message, .. }) => {
                assert!(message.contains("parquet"), "{message}")
            }
            Err(e) => panic!("unexpected error kind: {e}"),
            Ok(it) => {
                let mut n = 0;
                for r in it {
                    n += 1;
                    assert!(n <= 201, "a corrupt file yields more rows than written");
                    if let Err(e) = r {
                        assert!(e.message.contains("parquet"), "{}", e.message);
                    }
                }
            }
        }
    }
}

#[test]
fn a_100_mb_single_line_is_skipped_and_counted_in_bounded_memory() {
    let t = tmp();
    let p = t.path().join("huge.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        f.write_all(b"{\"a\": 1}\n{\"text\": \"").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\"}\n{\"a\": 2}\n").unwrap();
    }
    let (ok, bad) = rows(&p);
    assert_eq!(ok.len(), 2);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].row, 2);
    assert!(bad[0].message.contains("longer than"), "{bad:?}");
    // The same as one JSON array element.
    let q = t.path().join("huge.json");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&q).unwrap());
        f.write_all(b"[{\"a\": 1}, {\"text\": \"").unwrap();
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\"}, {\"a\": 2}]").unwrap();
    }
    let (ok, bad) = rows(&q);
    assert_eq!((ok.len(), bad.len()), (2, 1), "{bad:?}");
    std::fs::remove_file(p).unwrap();
    std::fs::remove_file(q).unwrap();
}

#[test]
fn a_truncated_json_array_ends_with_an_error() {
    let t = tmp();
    let p = t.path().join("t.json");
    std::fs::write(&p, "[{\"a\": 1}, {\"a\": [2, ").unwrap();
    let (ok, bad) = rows(&p);
    assert_eq!(ok.len(), 1);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].message.contains("truncated"), "{bad:?}");
    std::fs::write(&p, "42").unwrap();
    assert!(read::open(&p).is_err());
    std::fs::write(&p, "").unwrap();
    assert_eq!(read::open(&p).unwrap().count(), 0);
}

#[test]
fn directories_resolve_to_splits_by_hugging_face_naming() {
    let t = tmp();
    let d = t.path();
    for f in [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/validation-00000-of-00001.parquet",
        "test.jsonl",
        "dev/part-0.csv",
        "README.md",
        ".cache/train.jsonl",
    ] {
        let p = d.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "").unwrap();
    }
    let s = read::resolve(d).unwrap();
    let names: Vec<(&str, usize)> = s
        .iter()
        .map(|s| (s.split.as_str(), s.files.len()))
        .collect();
    assert_eq!(names, vec![("train", 2), ("validation", 2), ("test", 1)]);
    let empty = tmp();
    assert!(matches!(
        read::resolve(empty.path()),
        Err(ReadError::Empty { .. })
    ));
    assert!(matches!(
        read::resolve(&d.join("README.md")),
        Err(ReadError::UnknownFormat { .. })
    ));
    assert!(matches!(
        read::resolve(&PathBuf::from("/nonexistent/x.jsonl")),
        Err(ReadError::Io { .. })
    ));
}

#[cfg(unix)]
#[test]
fn symlinked_directories_are_followed_and_a_symlink_loop_ends() {
    let t = tmp();
    let store = t.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("train.jsonl"), "{\"text\":\"a\"}\n").unwrap();
    let d = t.path().join("ds");
    std::fs::create_dir_all(d.join("data")).unwrap();
    // A Hugging Face cache snapshot: directories and files are symlinks into a blob store.
    std::os::unix::fs::symlink(&store, d.join("data/linked")).unwrap();
    std::os::unix::fs::symlink(store.join("train.jsonl"), d.join("test.jsonl")).unwrap();
    // A loop back to the dataset root, and a dangling link.
    std::os::unix::fs::symlink(&d, d.join("data/loop")).unwrap();
    std::os::unix::fs::symlink(t.path().join("gone"), d.join("validation.jsonl")).unwrap();
    let s = read::resolve(&d).unwrap();
    let names: Vec<(&str, usize)> = s
        .iter()
        .map(|s| (s.split.as_str(), s.files.len()))
        .collect();
    // The loop adds nothing twice; the dangling link is not a file.
    assert_eq!(names, vec![("train", 1), ("test", 1)]);
    assert_eq!(rows(&s[0].files[0]).0.len(), 1);

    // The manifest walks the same tree once (the dangling link removed: it cannot be hashed).
    std::fs::remove_file(d.join("validation.jsonl")).unwrap();
    let m = mlres_data::manifest::compute(std::slice::from_ref(&d), t.path()).unwrap();
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["ds/data/linked/train.jsonl", "ds/test.jsonl"]);
}

#[test]
fn progress_counting_sees_every_byte_of_a_text_file() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let t = tmp();
    for (name, body) in [
        ("a.jsonl", "{\"x\":1}\n{\"x\":2}\n".to_string()),
        ("a.json", "[{\"x\":1}, {\"x\":2}]".to_string()),
        ("a.csv", "x\n1\n2\n".to_string()),
    ] {
        let p = t.path().join(name);
        std::fs::write(&p, &body).unwrap();
        let c = Arc::new(AtomicU64::new(0));
        let n = read::open_with_progress(&p, c.clone()).unwrap().count();
        assert_eq!(n, 2, "{name}");
        assert_eq!(c.load(Ordering::Relaxed), body.len() as u64, "{name}");
    }
    let p = t.path().join("a.parquet");
    write_parquet(&p, &["a", "b"], &[1, 2]);
    let c = Arc::new(AtomicU64::new(0));
    let mut it = read::open_with_progress(&p, c.clone()).unwrap();
    assert!(it.next().is_some());
    assert_eq!(c.load(Ordering::Relaxed), 0, "parquet counts when done");
    assert_eq!(it.count(), 1);
    assert_eq!(
        c.load(Ordering::Relaxed),
        std::fs::metadata(&p).unwrap().len()
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn readers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read::jsonl_from_bytes(bytes.clone()).count();
            let mut arr = b"[".to_vec();
            arr.extend_from_slice(&bytes);
            let _ = read::json_array_from_bytes(arr).count();
        }

        #[test]
        fn json_array_agrees_with_serde_json(
            v in proptest::collection::vec(
                proptest::collection::btree_map("[a-z\"\\\\,\\]\\[{}]{0,6}", any::<i32>(), 0..4), 0..8)
        ) {
            let vals: Vec<serde_json::Value> = v.iter().map(|m| json!(m)).collect();
            let text = serde_json::to_vec(&vals).unwrap();
            let got: Vec<serde_json::Value> = read::json_array_from_bytes(text.clone())
                .map(|r| serde_json::Value::Object(r.unwrap()))
                .collect();
            prop_assert_eq!(&got, &vals);
            let pretty = serde_json::to_vec_pretty(&vals).unwrap();
            let got2: Vec<serde_json::Value> = read::json_array_from_bytes(pretty)
                .map(|r| serde_json::Value::Object(r.unwrap()))
                .collect();
            prop_assert_eq!(&got2, &vals);
            let lines: Vec<u8> = vals.iter().flat_map(|v| {
                let mut l = serde_json::to_vec(v).unwrap();
                l.push(b'\n');
                l
            }).collect();
            let got3: Vec<serde_json::Value> = read::jsonl_from_bytes(lines)
                .map(|r| serde_json::Value::Object(r.unwrap()))
                .collect();
            prop_assert_eq!(&got3, &vals);
        }

        /// Buffer boundaries anywhere (inside strings, escapes, between `\` and `"`) change
        /// nothing: both readers scan chunk by chunk.
        #[test]
        fn readers_agree_with_serde_json_at_every_buffer_size(
            v in proptest::collection::vec(
                proptest::collection::btree_map("[a-z\"\\\\,\\]\\[{}\n]{0,6}", "[ -~é\"\\\\]{0,8}", 0..4), 0..6),
            cap in 1usize..24,
        ) {
            use std::io::{BufReader, Cursor};
            let vals: Vec<serde_json::Value> = v.iter().map(|m| json!(m)).collect();
            for text in [serde_json::to_vec(&vals).unwrap(), serde_json::to_vec_pretty(&vals).unwrap()] {
                let got: Vec<serde_json::Value> =
                    read::JsonArray::new(BufReader::with_capacity(cap, Cursor::new(text)))
                        .map(|r| serde_json::Value::Object(r.unwrap()))
                        .collect();
                prop_assert_eq!(&got, &vals);
            }
            let lines: Vec<u8> = vals.iter().flat_map(|v| {
                let mut l = serde_json::to_vec(v).unwrap();
                l.push(b'\n');
                l
            }).collect();
            let got: Vec<serde_json::Value> =
                read::JsonLines::new(BufReader::with_capacity(cap, Cursor::new(lines)))
                    .map(|r| serde_json::Value::Object(r.unwrap()))
                    .collect();
            prop_assert_eq!(&got, &vals);
        }

        #[test]
        fn small_buffers_never_panic_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            cap in 1usize..16,
        ) {
            use std::io::{BufReader, Cursor};
            let _ = read::JsonLines::new(BufReader::with_capacity(cap, Cursor::new(bytes.clone()))).count();
            let mut arr = b"[".to_vec();
            arr.extend_from_slice(&bytes);
            let _ = read::JsonArray::new(BufReader::with_capacity(cap, Cursor::new(arr))).count();
        }
    }
}

// ------------------------------------------------------------------ compressed and odd inputs

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

#[test]
fn gzip_zstd_and_bzip2_files_read_like_the_plain_file() {
    let d = tmp();
    let jsonl: String = (0..500)
        .map(|i| format!("{}\n", json!({"text": format!("row {i}"), "label": i % 3})))
        .collect();
    let csv: String = std::iter::once("text,label\n".to_string())
        .chain((0..500).map(|i| format!("row {i},{}\n", i % 3)))
        .collect();
    let array = format!(
        "[{}]",
        (0..500)
            .map(|i| json!({"text": format!("row {i}"), "label": i % 3}).to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    for (ext, plain) in [("jsonl", &jsonl), ("csv", &csv), ("json", &array)] {
        let p = d.path().join(format!("plain.{ext}"));
        std::fs::write(&p, plain).unwrap();
        let (want, bad) = rows(&p);
        assert!(bad.is_empty());
        assert_eq!(want.len(), 500);
        for (cext, bytes) in [
            ("gz", gzip(plain.as_bytes())),
            ("zst", zstd(plain.as_bytes())),
            ("bz2", bzip2(plain.as_bytes())),
        ] {
            let p = d.path().join(format!("train.{ext}.{cext}"));
            std::fs::write(&p, &bytes).unwrap();
            assert!(Format::from_path(&p).is_some(), "{}", p.display());
            let (got, bad) = rows(&p);
            assert!(bad.is_empty(), "{ext}.{cext}: {bad:?}");
            assert_eq!(got, want, "{ext}.{cext}");
            // Magic bytes are enough: compressed data under a plain name reads too.
            let q = d.path().join(format!("misnamed-{cext}.{ext}"));
            std::fs::write(&q, &bytes).unwrap();
            assert_eq!(rows(&q).0, want, "{ext} holding {cext}");
        }
    }
    // A dataset directory finds compressed files, in their split.
    let splits = read::resolve(d.path()).unwrap();
    let train = splits.iter().find(|s| s.split == "train").unwrap();
    assert_eq!(train.files.len(), 9, "{:?}", train.files);
    // Concatenated gzip members (pigz, `cat a.gz b.gz`) are one stream.
    let p = d.path().join("two.jsonl.gz");
    let mut two = gzip(b"{\"a\": 1}\n");
    two.extend(gzip(b"{\"a\": 2}\n"));
    std::fs::write(&p, two).unwrap();
    assert_eq!(rows(&p).0.len(), 2);
}

#[test]
fn a_decompression_bomb_stops_at_the_cap_with_a_clear_error() {
    let d = tmp();
    // 16 MiB of one short row repeated compresses to a few KiB.
    let row = b"{\"text\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n";
    let plain: Vec<u8> = row.iter().copied().cycle().take(16 << 20).collect();
    for (ext, bytes) in [
        ("gz", gzip(&plain)),
        ("zst", zstd(&plain)),
        ("bz2", bzip2(&plain)),
    ] {
        assert!(bytes.len() < 1 << 20, "{ext}: {}", bytes.len());
        let p = d.path().join(format!("bomb.jsonl.{ext}"));
        std::fs::write(&p, &bytes).unwrap();
        let mut ok = 0u64;
        let mut errors = Vec::new();
        for r in read::open_capped(&p, 1 << 20).unwrap() {
            match r {
                Ok(_) => ok += 1,
                Err(e) => errors.push(e.message),
            }
        }
        // Rows up to the cap are read, then one error and the end of the stream.
        assert!(
            ok > 1000 && ok < (1 << 20) / row.len() as u64 + 1,
            "{ext}: {ok}"
        );
        assert_eq!(errors.len(), 1, "{ext}: {errors:?}");
        assert!(
            errors[0].contains("more than 1048576 bytes")
                && errors[0].contains("decompression bomb"),
            "{ext}: {}",
            errors[0]
        );
    }
    // The default cap: 200 times the file, at least 4 GiB, at most 64 GiB.
    assert_eq!(read::decompressed_cap(1000), 4 << 30);
    assert_eq!(read::decompressed_cap(100 << 20), 20000 << 20);
    assert_eq!(read::decompressed_cap(1 << 40), 64 << 30);
}

#[test]
fn corrupt_or_misnamed_compressed_files_are_clear_errors() {
    let d = tmp();
    let plain = b"{\"a\": 1}\n".repeat(10_000);
    // Truncated: the rows before the cut, then one error, then the end.
    for (ext, bytes) in [
        ("gz", gzip(&plain)),
        ("bz2", bzip2(&plain)),
        ("zst", zstd(&plain)),
    ] {
        let p = d.path().join(format!("cut.jsonl.{ext}"));
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        match read::open(&p) {
            Ok(rows) => {
                let all: Vec<_> = rows.collect();
                let errs: Vec<_> = all.iter().filter_map(|r| r.as_ref().err()).collect();
                assert_eq!(errs.len(), 1, "{ext}: {errs:?}");
                assert!(
                    errs[0].message.starts_with("read failed"),
                    "{ext}: {:?}",
                    errs[0]
                );
            }
            Err(e) => assert!(e.to_string().contains(ext), "{e}"),
        }
    }
    // Named .gz but plain text.
    let p = d.path().join("plain.jsonl.gz");
    std::fs::write(&p, b"{\"a\": 1}\n").unwrap();
    let e = read::open(&p).err().unwrap().to_string();
    assert!(e.contains("named as gzip data but is not"), "{e}");
    // Compressed parquet: refused, saying why.
    let p = d.path().join("t.parquet.gz");
    std::fs::write(&p, gzip(b"PAR1")).unwrap();
    let e = read::open(&p).err().unwrap().to_string();
    assert!(e.contains("compressed parquet file is not read"), "{e}");
}

#[test]
fn a_fifo_or_device_is_refused_without_blocking() {
    let d = tmp();
    let fifo = d.path().join("pipe.jsonl");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    // Nothing writes to the FIFO: opening it would block this test forever.
    let e = read::open(&fifo).err().unwrap().to_string();
    assert!(
        e.contains("is a FIFO (named pipe), not a regular file"),
        "{e}"
    );
    let e = read::resolve(&fifo).err().unwrap().to_string();
    assert!(e.contains("FIFO") && !e.contains("Not a directory"), "{e}");
    let e = mlres_data::manifest::compute(std::slice::from_ref(&fifo), d.path())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("FIFO"), "{e}");
    let e = read::resolve(Path::new("/dev/null"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("character device"), "{e}");
}

#[test]
fn json_nested_too_deep_names_the_limit() {
    let d = tmp();
    let deep = format!("{{\"a\": {}1{}}}", "[".repeat(300), "]".repeat(300));
    let p = d.path().join("deep.jsonl");
    std::fs::write(&p, format!("{{\"a\": 1}}\n{deep}\n{{\"a\": 2}}\n")).unwrap();
    let (ok, bad) = rows(&p);
    assert_eq!(ok.len(), 2);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].row, 2);
    assert!(
        bad[0].message.contains("nested deeper than 128 levels"),
        "{}",
        bad[0].message
    );
    let p = d.path().join("deep.json");
    std::fs::write(&p, format!("[{{\"a\": 1}}, {deep}]")).unwrap();
    let (_, bad) = rows(&p);
    assert!(
        bad[0].message.contains("nested deeper than 128 levels"),
        "{bad:?}"
    );
}
