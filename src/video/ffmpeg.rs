//! FFmpeg's global set-up: initialised once, its own log messages routed to `tracing`.

/// Initialise FFmpeg once. Its own messages (errors and warnings) go to `tracing` at debug level under the target
/// `ffmpeg`, so `--debug` shows them; failures reach the user through videoforge's own errors.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = ffmpeg_next::init() {
            tracing::warn!("FFmpeg initialisation: {e}");
        }
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Warning);
        // SAFETY: installs a callback with the signature FFmpeg expects; it only reads its arguments.
        unsafe { ffmpeg_next::ffi::av_log_set_callback(Some(ffmpeg_log)) };
    });
}

/// FFmpeg's log callback: formats the message (with FFmpeg's `[h264 @ 0x…]` prefix) into a stack buffer and hands it
/// to `tracing`, only when debug output for the target is on (nothing is formatted or allocated otherwise).
unsafe extern "C" fn ffmpeg_log(
    avcl: *mut std::ffi::c_void,
    level: std::ffi::c_int,
    fmt: *const std::ffi::c_char,
    args: *mut ffmpeg_next::ffi::__va_list_tag,
) {
    if level > ffmpeg_next::ffi::AV_LOG_WARNING || !tracing::enabled!(target: "ffmpeg", tracing::Level::DEBUG) {
        return;
    }
    let mut line = [0 as std::ffi::c_char; 1024];
    let mut prefix: std::ffi::c_int = 1;
    // SAFETY: FFmpeg's own formatter, with the arguments FFmpeg passed us, into a buffer of the size given.
    let n = unsafe {
        ffmpeg_next::ffi::av_log_format_line2(avcl, level, fmt, args, line.as_mut_ptr(), line.len() as _, &mut prefix)
    };
    if n < 0 {
        return;
    }
    // SAFETY: av_log_format_line2 always NUL-terminates within the buffer.
    let text = unsafe { std::ffi::CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    tracing::debug!(target: "ffmpeg", "{}", text.trim_end());
}
