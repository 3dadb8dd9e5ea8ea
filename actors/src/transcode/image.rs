//! Still images: a JPEG/PNG/WebP/BMP/TIFF upload gets WebP and AVIF
//! renditions at a few widths (never upscaled) and a poster; the original
//! is kept for download like any other.
//!
//! Files: `assets/{asset}/media/image-{width}.webp`, `image-{width}.avif`,
//! and `poster.webp` (the largest WebP up to 1280 wide).

use bytes::Bytes;
use serde_json::{Value, json};

use super::Transcoder;
use super::rung::{RungErrorKind, ffmpeg_image, store_media};
use crate::ffmpeg::FfmpegError;

/// Widths made when the image is at least that wide.
const WIDTHS: [u32; 4] = [320, 640, 1280, 1920];
/// The poster is the largest rendition up to this width.
const POSTER_WIDTH: u32 = 1280;

/// Containers ffprobe reports for a single still picture.
const IMAGE_FORMATS: [&str; 7] = [
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
    "bmp_pipe",
    "tiff_pipe",
    "jpegxl_pipe",
];

/// Whether ffprobe's raw output describes a still image: an image
/// container with one video stream and no audio.
pub fn is_still_image(raw: &Value) -> bool {
    let format = raw["format"]["format_name"].as_str().unwrap_or("");
    let streams = raw["streams"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let video = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .count();
    let audio = streams
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .count();
    IMAGE_FORMATS.contains(&format) && video == 1 && audio == 0
}

/// The widths made for an image `width` pixels wide: every standard width
/// it reaches, or its own width when it is smaller than all of them.
pub fn widths_for(width: u32) -> Vec<u32> {
    let mut out: Vec<u32> = WIDTHS.iter().copied().filter(|&w| w <= width).collect();
    if out.is_empty() {
        out.push(width.max(2) & !1);
    }
    out
}

/// Makes every rendition and the poster; returns what the asset lists.
pub async fn process(
    transcoder: &Transcoder,
    asset: &str,
    source: &str,
    width: u32,
) -> Result<Value, RungErrorKind> {
    let mut made = Vec::new();
    let mut poster: Option<Bytes> = None;
    for w in widths_for(width) {
        let scale = format!("scale={w}:-2");
        let mut webp_args =
            super::rung::strings(&["-hide_banner", "-nostdin", "-v", "error", "-i", source]);
        webp_args.extend(super::rung::strings(&["-vf", &scale]));
        // One WebP picture, encoded as the video poster is.
        webp_args.extend(super::rung::strings(&super::rung::POSTER_OUTPUT));
        webp_args.push("pipe:1".into());
        let webp = ffmpeg_image(
            &transcoder.processes,
            &format!("ffmpeg {asset} webp {w}"),
            &webp_args,
        )
        .await?;
        if w <= POSTER_WIDTH {
            poster = Some(webp.clone());
        }
        store(transcoder, asset, &format!("image-{w}.webp"), webp).await?;
        let avif = avif(transcoder, asset, source, w).await?;
        store(transcoder, asset, &format!("image-{w}.avif"), avif).await?;
        made.push(json!({
            "width": w,
            "webp_url": format!("/vod/{asset}/image-{w}.webp"),
            "avif_url": format!("/vod/{asset}/image-{w}.avif"),
        }));
    }
    if let Some(poster) = poster {
        store(transcoder, asset, "poster.webp", poster).await?;
    }
    Ok(Value::Array(made))
}

/// AVIF (AV1 still picture, libaom). The AVIF muxer needs a seekable
/// output, so ffmpeg writes a temporary file that is read back.
async fn avif(
    transcoder: &Transcoder,
    asset: &str,
    source: &str,
    width: u32,
) -> Result<Bytes, RungErrorKind> {
    let path = std::env::temp_dir().join(format!("streamforge-{asset}-{width}.avif"));
    let scale = format!("scale={width}:-2");
    let mut command = crate::process::piped("ffmpeg");
    command
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            source,
        ])
        .args(["-frames:v", "1", "-vf", &scale, "-pix_fmt", "yuv420p"])
        .args([
            "-c:v",
            "libaom-av1",
            "-still-picture",
            "1",
            "-crf",
            "32",
            "-cpu-used",
            "8",
        ])
        .args(["-f", "avif"])
        .arg(&path);
    let child = transcoder
        .processes
        .spawn(&format!("ffmpeg {asset} avif {width}"), command)
        .map_err(FfmpegError::Start)?;
    let output = child.output().await.map_err(FfmpegError::Wait)?;
    let read = tokio::fs::read(&path).await;
    let _ = tokio::fs::remove_file(&path).await;
    if !output.status.success() {
        return Err(RungErrorKind::NoImage {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    read.map(Bytes::from).map_err(RungErrorKind::ReadBack)
}

async fn store(
    transcoder: &Transcoder,
    asset: &str,
    name: &str,
    bytes: Bytes,
) -> Result<(), RungErrorKind> {
    store_media(&transcoder.storage, asset, name, bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_never_upscale() {
        assert_eq!(widths_for(4000), vec![320, 640, 1280, 1920]);
        assert_eq!(widths_for(800), vec![320, 640]);
        assert_eq!(widths_for(201), vec![200]);
    }

    #[test]
    fn still_images_are_told_from_video() {
        let photo =
            json!({"format": {"format_name": "image2"}, "streams": [{"codec_type": "video"}]});
        assert!(is_still_image(&photo));
        let clip = json!({"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"}, "streams": [{"codec_type": "video"}]});
        assert!(!is_still_image(&clip));
    }
}
