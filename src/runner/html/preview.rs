//! The before/after picture of a file: a crop of a frame from the middle of the clip, the input upscaled with a
//! bicubic filter beside the model's output, written as `<output>.report.png` next to the file's report, so the
//! run report can be rebuilt from the JSON reports without decoding anything again.

use crate::video::{png, still, Still, VideoError};
use std::path::{Path, PathBuf};

/// Edge of the crop in output pixels.
const CROP: u32 = 192;
/// Pixels between the two crops.
const GAP: u32 = 8;

/// Where a file's preview goes.
pub fn preview_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|f| f.to_os_string()).unwrap_or_default();
    name.push(".report.png");
    output.with_file_name(name)
}

/// Makes the preview of `output` (made from `input`) at `at_s` seconds into the clip, and writes it beside it.
pub fn write_preview(input: &Path, output: &Path, at_s: f64) -> Result<PathBuf, VideoError> {
    let after = still(output, at_s, None)?;
    let before = still(input, at_s, Some((after.width, after.height)))?;
    // The centre of the picture: where the subject usually is.
    let (w, h) = (CROP.min(after.width), CROP.min(after.height));
    let (x, y) = ((after.width - w) / 2, (after.height - h) / 2);
    let pair = side_by_side(&before.crop(x, y, w, h), &after.crop(x, y, w, h));
    let bytes = png(&pair)?;
    let path = preview_path(output);
    let tmp = path.with_extension(format!("png.tmp-{}", std::process::id()));
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| VideoError::Stream(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// Two stills of one height next to each other, a white gap between.
fn side_by_side(a: &Still, b: &Still) -> Still {
    let (width, height) = (a.width + GAP + b.width, a.height.max(b.height));
    let mut rgb = vec![255u8; (width * height * 3) as usize];
    for (img, x0) in [(a, 0), (b, a.width + GAP)] {
        for row in 0..img.height {
            let src = &img.rgb[(row * img.width * 3) as usize..((row + 1) * img.width * 3) as usize];
            let at = ((row * width + x0) * 3) as usize;
            rgb[at..at + src.len()].copy_from_slice(src);
        }
    }
    Still { width, height, rgb }
}
