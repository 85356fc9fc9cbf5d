//! Decoding the `multipart/form-data` bodies the images edits endpoint receives.
//!
//! A strict little parser (split on the boundary the request's content-type names)
//! rather than a multipart crate: the tests only need names, headers and exact bytes
//! of each part, and an async parser would need a byte stream for a body already in
//! memory.

use wiremock::Request as WireRequest;

/// One part of a form.
#[derive(Debug, Clone)]
pub struct Part {
    /// The `name` in its Content-Disposition.
    pub name: String,
    /// Its Content-Type header, if any.
    pub content_type: Option<String>,
    /// The `filename` in its Content-Disposition, if any.
    pub filename: Option<String>,
    /// Its exact bytes.
    pub data: Vec<u8>,
}

/// A decoded `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct Form {
    pub parts: Vec<Part>,
}

impl Form {
    /// Decodes `request`'s body; panics (with what was wrong) if it is not a form.
    pub fn parse(request: &WireRequest) -> Form {
        let ct = header(request, "content-type");
        assert!(ct.starts_with("multipart/form-data"), "not a form: {ct}");
        let boundary = ct
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .unwrap_or_else(|| panic!("no boundary in {ct}"))
            .trim_matches('"');
        let delimiter = format!("\r\n--{boundary}");
        let mut body = b"\r\n".to_vec();
        body.extend_from_slice(&request.body);
        let chunks = split(&body, delimiter.as_bytes());
        assert!(chunks[0].is_empty(), "bytes before the first boundary");
        let last = chunks.last().unwrap();
        assert!(last.starts_with(b"--"), "the form is not closed");
        let parts = chunks[1..chunks.len() - 1]
            .iter()
            .copied()
            .map(part)
            .collect();
        Form { parts }
    }

    /// The part names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.parts.iter().map(|p| p.name.as_str()).collect()
    }

    /// Whether a part called `name` was sent.
    pub fn has(&self, name: &str) -> bool {
        self.parts.iter().any(|p| p.name == name)
    }

    /// The text of the (first) part called `name`; panics if there is none.
    pub fn text(&self, name: &str) -> String {
        let p = self.parts.iter().find(|p| p.name == name);
        let p = p.unwrap_or_else(|| panic!("no part {name} in {:?}", self.names()));
        String::from_utf8(p.data.clone()).unwrap()
    }

    /// The `image[]` parts, in order.
    pub fn images(&self) -> Vec<&Part> {
        self.parts.iter().filter(|p| p.name == "image[]").collect()
    }

    /// The parts called `name`, in order.
    pub fn named(&self, name: &str) -> Vec<&Part> {
        self.parts.iter().filter(|p| p.name == name).collect()
    }

    /// The bytes of the `image[]` parts, in order.
    pub fn image_bytes(&self) -> Vec<&[u8]> {
        self.images().iter().map(|p| p.data.as_slice()).collect()
    }
}

/// The `image[]` bytes of each edits request, in order.
pub fn sent_images(requests: &[WireRequest]) -> Vec<Vec<Vec<u8>>> {
    requests
        .iter()
        .map(|r| {
            let form = Form::parse(r);
            form.image_bytes().iter().map(|b| b.to_vec()).collect()
        })
        .collect()
}

/// Header `name` of `request` as text; panics if it is missing.
pub fn header<'r>(request: &'r WireRequest, name: &str) -> &'r str {
    let value = request.headers.get(name);
    let value = value.unwrap_or_else(|| panic!("no {name} header"));
    value.to_str().unwrap()
}

fn split<'a>(haystack: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = haystack;
    while let Some(at) = super::find(rest, delimiter) {
        out.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    out.push(rest);
    out
}

/// One chunk between delimiters: CRLF, headers, a blank line, the data.
fn part(chunk: &[u8]) -> Part {
    let chunk = chunk
        .strip_prefix(b"\r\n")
        .expect("a CRLF after the boundary");
    let end = super::find(chunk, b"\r\n\r\n").expect("a blank line after the part headers");
    let head = std::str::from_utf8(&chunk[..end]).unwrap();
    let mut name = None;
    let mut content_type = None;
    let mut filename = None;
    for line in head.split("\r\n") {
        let (key, value) = line.split_once(':').expect("a header line");
        match key.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                name = disposition_name(value);
                filename = value
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("filename="))
                    .map(|n| n.trim_matches('"').to_string());
            }
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    Part {
        name: name.unwrap_or_else(|| panic!("a part without a name: {head}")),
        content_type,
        filename,
        data: chunk[end + 4..].to_vec(),
    }
}

fn disposition_name(value: &str) -> Option<String> {
    value
        .split(';')
        .find_map(|p| p.trim().strip_prefix("name="))
        .map(|n| n.trim_matches('"').to_string())
}
