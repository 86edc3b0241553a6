//! A tiny PNG writer for the chart in `runs/summary.md`: a 2-bit palette image in stored
//! (uncompressed) deflate blocks, so it needs no compression library and stays a few KiB.

/// Palette indices of [`Canvas`].
pub const BG: u8 = 0;
pub const GRID: u8 = 1;
pub const AXIS: u8 = 2;
pub const LINE: u8 = 3;
const PALETTE: [[u8; 3]; 4] = [
    [255, 255, 255],
    [225, 229, 236],
    [91, 100, 117],
    [47, 111, 223],
];

/// A width × height image of palette indices (0..=3).
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    px: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            px: vec![BG; (width * height) as usize],
        }
    }

    pub fn set(&mut self, x: i64, y: i64, c: u8) {
        if x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height {
            self.px[(y as u32 * self.width + x as u32) as usize] = c & 3;
        }
    }

    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.px[(y * self.width + x) as usize]
    }

    /// A straight line (Bresenham), `thick` pixels wide downwards.
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: u8, thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for t in 0..thick {
                self.set(x, y + t, c);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// The PNG file.
    pub fn encode(&self) -> Vec<u8> {
        // Scanlines: filter byte 0, then 4 pixels per byte, most significant first.
        let row = self.width.div_ceil(4) as usize;
        let mut raw = Vec::with_capacity((row + 1) * self.height as usize);
        for y in 0..self.height {
            raw.push(0);
            let mut b = 0u8;
            for x in 0..self.width {
                b |= self.get(x, y) << (6 - 2 * (x % 4));
                if x % 4 == 3 {
                    raw.push(b);
                    b = 0;
                }
            }
            if !self.width.is_multiple_of(4) {
                raw.push(b);
            }
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&self.width.to_be_bytes());
        ihdr.extend_from_slice(&self.height.to_be_bytes());
        ihdr.extend_from_slice(&[2, 3, 0, 0, 0]); // 2-bit depth, palette, deflate, no interlace
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"PLTE", &PALETTE.concat());
        chunk(&mut out, b"IDAT", &zlib_stored(&raw));
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib stream of stored deflate blocks (no compression).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = b.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// Best so far against iteration as a small step chart (no text: the summary says the range).
pub fn best_so_far_chart(points: &[(u32, f64)]) -> Option<Vec<u8>> {
    let pts: Vec<(u32, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    if pts.len() < 2 {
        return None;
    }
    let (w, h, m) = (480u32, 140u32, 8i64);
    let mut c = Canvas::new(w, h);
    let (x0, x1) = (pts[0].0 as f64, pts[pts.len() - 1].0 as f64);
    let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    let (pw, ph) = ((w as i64 - 2 * m) as f64, (h as i64 - 2 * m) as f64);
    let sx = |x: f64| m + ((x - x0) / (x1 - x0).max(1.0) * pw).round() as i64;
    // 10% head room above and below, so the line never sits on the frame.
    let sy = |y: f64| m + ((hi - y) / (hi - lo) * ph * 0.8 + ph * 0.1).round() as i64;
    for i in 0..=4 {
        let y = m + (ph * f64::from(i) / 4.0).round() as i64;
        c.line((m, y), (w as i64 - m, y), GRID, 1);
    }
    c.line((m, m), (m, h as i64 - m), AXIS, 1);
    c.line((m, h as i64 - m), (w as i64 - m, h as i64 - m), AXIS, 1);
    for p in pts.windows(2) {
        let (a, b) = (p[0], p[1]);
        c.line(
            (sx(a.0 as f64), sy(a.1)),
            (sx(b.0 as f64), sy(a.1)),
            LINE,
            2,
        );
        c.line(
            (sx(b.0 as f64), sy(a.1)),
            (sx(b.0 as f64), sy(b.1)),
            LINE,
            2,
        );
    }
    Some(c.encode())
}
