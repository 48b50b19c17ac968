//! Bytes the guard reads and writes: C strings, numbers, messages.

/// The bytes of the NUL-terminated string at `ptr`, without the NUL.
pub unsafe fn c_str<'a>(ptr: *const u8) -> &'a [u8] {
    let mut len = 0;
    while *ptr.add(len) != 0 {
        len += 1;
    }
    core::slice::from_raw_parts(ptr, len)
}

/// A positive process id written in decimal.
pub fn parse_pid(digits: &[u8]) -> Option<i32> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let mut pid: i32 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        pid = pid * 10 + i32::from(digit - b'0');
    }
    (pid > 0).then_some(pid)
}

/// A buffer that bytes are appended to, as far as it holds them.
pub struct Line<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Line<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends `more`; false when it did not fit whole.
    pub fn push(&mut self, more: &[u8]) -> bool {
        let room = N - self.len;
        let taken = more.len().min(room);
        self.bytes[self.len..self.len + taken].copy_from_slice(&more[..taken]);
        self.len += taken;
        taken == more.len()
    }

    /// Appends `number` in decimal.
    pub fn push_number(&mut self, mut number: u32) -> bool {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (number % 10) as u8;
            number /= 10;
            if number == 0 {
                break;
            }
        }
        self.push(&digits[at..])
    }

    /// What was appended.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the C library would say of the error number `errno`.
pub fn describe(errno: i32) -> &'static [u8] {
    match errno {
        1 => b"Operation not permitted",
        2 => b"No such file or directory",
        7 => b"Argument list too long",
        8 => b"Exec format error",
        11 => b"Resource temporarily unavailable",
        12 => b"Cannot allocate memory",
        13 => b"Permission denied",
        20 => b"Not a directory",
        21 => b"Is a directory",
        26 => b"Text file busy",
        36 => b"File name too long",
        40 => b"Too many levels of symbolic links",
        _ => b"Unknown error",
    }
}
