// Photos are shrunk in the browser before upload: a phone's 12-50 MP photo (2-6 MB, more than a mobile
// link carries quickly) becomes a JPEG of about 2 MP, which still reads a door code easily. The photo is
// drawn upright (EXIF orientation applied by createImageBitmap), so the server gets what the officer saw.
"use strict";
const PHOTO_MAX_PIXELS = 2_000_000;
const PHOTO_JPEG_QUALITY = 0.85;
// A photo already this small in bytes and pixels is sent as it is (a screenshot, a PNG of a code).
const PHOTO_SEND_AS_IS_BYTES = 1_000_000;

async function shrinkPhoto(file) {
  if (!file || !file.type.startsWith("image/")) return file;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, {imageOrientation: "from-image"});
  } catch (e) {
    return file;  // a format this browser cannot draw (e.g. HEIC): the server decides
  }
  const pixels = bitmap.width * bitmap.height;
  if (pixels <= PHOTO_MAX_PIXELS && file.size <= PHOTO_SEND_AS_IS_BYTES) { bitmap.close(); return file; }
  const scale = Math.min(1, Math.sqrt(PHOTO_MAX_PIXELS / pixels));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise(resolve => canvas.toBlob(resolve, "image/jpeg", PHOTO_JPEG_QUALITY));
  return blob ? new File([blob], "photo.jpg", {type: "image/jpeg"}) : file;
}

// Whether a (shrunk) photo is within the server's limit, given on the file input as data-max-bytes: a file
// the browser could not shrink is refused here rather than after minutes of uploading.
function photoFits(input, file) {
  const max = Number(input.dataset.maxBytes);
  return !file || !max || file.size <= max;
}

// The message for an answer to an upload: a 413 (from this server or a proxy in front of it, whose page
// is not JSON) always gets the page's own Chinese-first text.
async function uploadErrorText(r, T) {
  return r.status === 413 ? T.photo_too_large : errorText(r);
}
