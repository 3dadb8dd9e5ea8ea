//! tus request headers: creation (length, metadata, concatenation,
//! checksum) and PATCH rules, from arbitrary header values.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::tus::{Checksum, Concat, CreationRequest, Metadata, PatchRequest, UploadState};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = text.split('\n');
    let values: Vec<&str> = (0..6).map(|_| fields.next().unwrap_or("")).collect();
    let _ = Concat::parse(values[0]);
    let _ = Metadata::parse(values[1]);
    let _ = Checksum::parse(values[2]);
    let header = |name: &str| -> Option<&str> {
        let value = match name.to_ascii_lowercase().as_str() {
            "tus-resumable" => "1.0.0",
            "upload-length" => values[3],
            "upload-offset" => values[4],
            "upload-metadata" => values[1],
            "upload-concat" => values[0],
            "upload-checksum" => values[2],
            "upload-defer-length" => values[5],
            "content-type" => "application/offset+octet-stream",
            _ => return None,
        };
        (!value.is_empty()).then_some(value)
    };
    let _ = CreationRequest::from_headers(header, 1 << 40);
    let state = UploadState {
        offset: 10,
        length: Some(100),
        is_final_concat: false,
    };
    let _ = PatchRequest::from_headers(header, &state, 1 << 40);
});
