//! The multipart parser at every split point of real bodies, against near-delimiters
//! inside data, and against hostile bodies: no boundary, no delimiter, a header
//! section or a part over its cap, too many parts, no final delimiter, noise.

use super::*;

const B: &str = "------------------------d74496d66958873e";

/// What a body parsed to: parts with their data gathered.
#[derive(Debug, PartialEq, Eq)]
struct Form {
    parts: Vec<(PartHead, Vec<u8>)>,
    ended: bool,
}

/// Parses `body`, handing it to the parser `step` bytes at a time as a connection
/// would, then the end.
fn parse(body: &[u8], limits: Limits, step: usize) -> Result<Form, MultipartError> {
    let mut p = Multipart::new(B, limits);
    let mut buf = Vec::new();
    let mut fed = 0;
    let mut form = Form {
        parts: Vec::new(),
        ended: false,
    };
    let mut open = false;
    loop {
        match p.next(&buf)? {
            Some((event, used)) => {
                assert!(used > 0, "an event that uses nothing: {event:?}");
                assert!(
                    !form.ended || event == Event::Skip,
                    "{event:?} after the end"
                );
                match event {
                    Event::Part(head) => {
                        assert!(!open, "a part inside a part");
                        open = true;
                        form.parts.push((head, Vec::new()));
                    }
                    Event::Data(d) => {
                        assert!(open, "data outside a part");
                        form.parts.last_mut().unwrap().1.extend_from_slice(d);
                    }
                    Event::PartEnd => {
                        assert!(open);
                        open = false;
                    }
                    Event::End => form.ended = true,
                    Event::Skip => {}
                }
                buf.drain(..used);
            }
            None if fed == body.len() => {
                p.finish()?;
                return Ok(form);
            }
            None => {
                let n = step.min(body.len() - fed);
                buf.extend_from_slice(&body[fed..fed + n]);
                fed += n;
            }
        }
    }
}

/// A form as curl sends it: `curl -F file=@NAME` (and a field before it).
fn curl_body(name: &str, content: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
    body
}

fn file_head(name: &str) -> PartHead {
    PartHead {
        name: "file".into(),
        filename: Some(name.into()),
        content_type: Some("text/plain".into()),
    }
}

fn expected(content: &[u8]) -> Form {
    Form {
        parts: vec![
            (
                PartHead {
                    name: "note".into(),
                    filename: None,
                    content_type: None,
                },
                b"hello".to_vec(),
            ),
            (file_head("mydoc.txt"), content.to_vec()),
        ],
        ended: true,
    }
}

#[test]
fn a_curl_form_parses_whatever_the_reads() {
    let content = b"Hello, this is a test document.";
    let body = curl_body("mydoc.txt", content);
    for step in [1, 2, 3, 7, 64, 4096, body.len()] {
        assert_eq!(
            parse(&body, Limits::default(), step).unwrap(),
            expected(content),
            "step {step}"
        );
    }
}

#[test]
fn a_delimiter_split_across_two_reads_is_found_at_every_split_point() {
    let content: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let body = curl_body("mydoc.txt", &content);
    let want = expected(&content);
    for split in 0..=body.len() {
        let mut p = Multipart::new(B, Limits::default());
        let mut got = Vec::new();
        let mut buf = body[..split].to_vec();
        let mut rest = Some(&body[split..]);
        let mut ended = false;
        loop {
            match p.next(&buf).unwrap() {
                Some((event, used)) => {
                    if let Event::Data(d) = &event {
                        got.extend_from_slice(d);
                    }
                    ended |= event == Event::End;
                    buf.drain(..used);
                }
                None => match rest.take() {
                    Some(r) => buf.extend_from_slice(r),
                    None => break,
                },
            }
        }
        p.finish().unwrap();
        assert!(ended, "split at {split}");
        assert_eq!(
            got,
            [b"hello".as_slice(), &content].concat(),
            "split at {split}"
        );
    }
    assert!(want.ended);
}

#[test]
fn near_delimiters_inside_the_data_are_data() {
    // A delimiter cut short; a boundary with a character glued on; a boundary not
    // at a line start; a boundary followed by padding and text; line ends.
    let tricky: Vec<u8> = [
        b"a\r\n--".as_slice(),
        b"\r\n",
        b"\r\n--",
        &B.as_bytes()[..B.len() - 1],
        b"x\r\n--",
        B.as_bytes(),
        b"X\r\nz--",
        B.as_bytes(),
        b"\r\nz\r\n--",
        B.as_bytes(),
        b" \tnot a delimiter\r\n",
        b"\r\n\r\n\r",
    ]
    .concat();
    let body = curl_body("t.bin", &tricky);
    for step in [1, 5, 97, body.len()] {
        let form = parse(&body, Limits::default(), step).unwrap();
        assert_eq!(form.parts[1].1, tricky, "step {step}");
    }
}

#[test]
fn a_preamble_an_epilogue_and_transport_padding_are_allowed() {
    let body = format!(
        "This is the preamble.\r\n--{B}  \t\r\nContent-Disposition: form-data; name=file; \
         filename*=UTF-8''%e2%82%ac%20rates.txt\r\n\r\ndata\r\n--{B}--\r\nan epilogue\r\n"
    );
    let form = parse(body.as_bytes(), Limits::default(), 3).unwrap();
    assert_eq!(
        form.parts,
        vec![(
            PartHead {
                name: "file".into(),
                filename: Some("€ rates.txt".into()),
                content_type: None,
            },
            b"data".to_vec()
        )]
    );
    // An empty part and an empty form.
    let body = format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\r\n--{B}--");
    let form = parse(body.as_bytes(), Limits::default(), 1).unwrap();
    assert_eq!(form.parts[0].1, b"");
    assert!(parse(format!("--{B}--").as_bytes(), Limits::default(), 1)
        .unwrap()
        .parts
        .is_empty());
}

#[test]
fn the_boundary_comes_from_the_content_type() {
    let ok = |t: &str| boundary(t).unwrap().unwrap();
    assert_eq!(ok(&format!("multipart/form-data; boundary={B}")), B);
    assert_eq!(ok("Multipart/Form-Data;boundary=\"a b;c\""), "a b;c");
    assert_eq!(ok("multipart/form-data; charset=utf-8; boundary=x"), "x");
    assert!(boundary("application/octet-stream").is_none());
    assert!(boundary("multipart/mixed; boundary=x").is_none());
    for bad in [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        "multipart/form-data; boundary=\"x \"",
    ] {
        assert!(
            matches!(boundary(bad), Some(Err(MultipartError::NoBoundary(_)))),
            "{bad}"
        );
    }
    let long = format!("multipart/form-data; boundary={}", "x".repeat(71));
    assert!(matches!(boundary(&long), Some(Err(_))));
}

#[test]
fn a_body_without_its_delimiter_is_refused_within_the_preamble_cap() {
    let limits = Limits {
        preamble: 100,
        ..Limits::default()
    };
    let body = vec![b'x'; 10_000];
    assert_eq!(
        parse(&body, limits, 64),
        Err(MultipartError::NoDelimiter { within: 100 })
    );
    // Another boundary than the Content-Type's.
    let body = curl_body("a.txt", b"a")
        .iter()
        .map(|&b| if b == b'd' { b'e' } else { b })
        .collect::<Vec<u8>>();
    assert!(matches!(
        parse(&body, limits, 7),
        Err(MultipartError::NoDelimiter { .. }) | Err(MultipartError::Unterminated)
    ));
    assert_eq!(parse(b"", limits, 1), Err(MultipartError::Unterminated));
}

#[test]
fn a_body_that_stops_before_its_final_delimiter_is_refused() {
    let body = curl_body("mydoc.txt", b"some data");
    for cut in [body.len() - 2 - 2, body.len() - 20, body.len() / 2, 10] {
        let err = parse(&body[..cut], Limits::default(), 5).unwrap_err();
        assert_eq!(err, MultipartError::Unterminated, "cut at {cut}");
    }
    // The final delimiter without its CRLF is enough.
    assert!(parse(&body[..body.len() - 2], Limits::default(), 5).is_ok());
}

#[test]
fn caps_hold_against_long_heads_many_parts_and_long_parts() {
    let limits = Limits {
        head: 200,
        parts: 2,
        field: 10,
        file: 20,
        ..Limits::default()
    };
    let long_head = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: {}\r\n\r\nx\r\n--{B}--",
        "p".repeat(500)
    );
    assert_eq!(
        parse(long_head.as_bytes(), limits, 13),
        Err(MultipartError::HeadTooLong { cap: 200 })
    );
    // A head that never ends is refused at the cap, not buffered for ever.
    let endless = format!("--{B}\r\n{}", "h".repeat(100_000));
    assert_eq!(
        parse(endless.as_bytes(), limits, 4096),
        Err(MultipartError::HeadTooLong { cap: 200 })
    );
    let part = |name: &str, data: &str| {
        format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{data}\r\n")
    };
    let three = format!(
        "{}{}{}--{B}--",
        part("a", "1"),
        part("b", "2"),
        part("c", "3")
    );
    assert_eq!(
        parse(three.as_bytes(), limits, 9),
        Err(MultipartError::TooManyParts { cap: 2 })
    );
    let long_field = format!("{}--{B}--", part("note", &"n".repeat(11)));
    assert_eq!(
        parse(long_field.as_bytes(), limits, 3),
        Err(MultipartError::PartTooLong {
            name: "note".into(),
            cap: 10
        })
    );
    let long_file = format!("{}--{B}--", part("file", &"f".repeat(21)));
    assert_eq!(
        parse(long_file.as_bytes(), limits, 1000),
        Err(MultipartError::PartTooLong {
            name: "file".into(),
            cap: 20
        })
    );
    let fits = format!("{}--{B}--", part("file", &"f".repeat(20)));
    assert!(parse(fits.as_bytes(), limits, 1).is_ok());
    let epilogue = format!("{}--{B}--{}", part("a", "1"), "e".repeat(100_000));
    assert!(matches!(
        parse(epilogue.as_bytes(), Limits::default(), 4096),
        Err(MultipartError::EpilogueTooLong { .. })
    ));
}

#[test]
fn part_heads_must_be_form_data_with_a_name() {
    let with_head = |head: &str| format!("--{B}\r\n{head}\r\n\r\nx\r\n--{B}--");
    for (head, why) in [
        ("Content-Type: text/plain", "no Content-Disposition"),
        (
            "Content-Disposition: attachment; name=\"file\"",
            "not form-data",
        ),
        (
            "Content-Disposition: form-data; filename=\"a\"",
            "has no name",
        ),
        ("Content-Disposition form-data", ""),
    ] {
        match parse(with_head(head).as_bytes(), Limits::default(), 4) {
            Err(MultipartError::BadHead(got)) => assert!(got.contains(why), "{head}: {got}"),
            other => panic!("{head}: {other:?}"),
        }
    }
    // A part with no header at all.
    let bare = format!("--{B}\r\n\r\nx\r\n--{B}--");
    assert!(matches!(
        parse(bare.as_bytes(), Limits::default(), 4),
        Err(MultipartError::BadHead(_))
    ));
    // Something glued to the first boundary makes it no delimiter: that line, and
    // what follows up to a real delimiter, is preamble.
    let glued = format!("--{B}X\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--{B}--");
    let form = parse(glued.as_bytes(), Limits::default(), 4).unwrap();
    assert!(form.parts.is_empty() && form.ended, "{form:?}");
}

#[test]
fn a_quoted_filename_keeps_its_escapes_and_semicolons() {
    let body = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\"; c.txt\"\r\n\r\nx\r\n--{B}--"
    );
    let form = parse(body.as_bytes(), Limits::default(), 2).unwrap();
    assert_eq!(form.parts[0].0.filename.as_deref(), Some("a \"b\"; c.txt"));
    // A backslash that escapes nothing is itself: a Windows path stays one.
    let body = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"C:\\dir\\c.txt\"\r\n\r\nx\r\n--{B}--"
    );
    let form = parse(body.as_bytes(), Limits::default(), 2).unwrap();
    assert_eq!(form.parts[0].0.filename.as_deref(), Some("C:\\dir\\c.txt"));
    // A traversal name arrives as it was sent: judging it is the caller's business.
    let body = curl_body("../../etc/passwd", b"x");
    let form = parse(&body, Limits::default(), 2).unwrap();
    assert_eq!(
        form.parts[1].0.filename.as_deref(),
        Some("../../etc/passwd")
    );
}

#[test]
fn noise_never_panics_and_never_stalls() {
    // A deterministic generator: the same bytes every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pieces: [&[u8]; 8] = [
        b"\r\n",
        b"--",
        B.as_bytes(),
        b"Content-Disposition: form-data; name=\"file\"\r\n",
        b"\r\n\r\n",
        b" ",
        b"x",
        b"\"",
    ];
    for _ in 0..2000 {
        let mut body = Vec::new();
        for _ in 0..(next() % 24) {
            match next() % 10 {
                0 | 1 => body.push(next() as u8),
                n => body.extend_from_slice(pieces[(n % 8) as usize]),
            }
        }
        let step = 1 + (next() % 17) as usize;
        let _ = parse(&body, Limits::default(), step);
    }
}
