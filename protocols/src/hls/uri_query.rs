//! Appending a query (a URL signature) to every URI a playlist names, so a
//! player that follows the playlist's relative URIs presents it with every
//! request: the segment, part, init-section and sub-playlist URIs of a
//! media or multivariant playlist.

/// Appends `query` (without `?`, already URL-safe) to every URI of `playlist`:
/// the URI lines and the `URI="…"` attributes of its tags.
pub fn append_query(playlist: &str, query: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + 64);
    for line in playlist.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let newline = &line[body.len()..];
        if body.is_empty() {
            out.push_str(line);
            continue;
        }
        if body.starts_with('#') {
            out.push_str(&tag_with_query(body, query));
        } else {
            out.push_str(&with_query(body, query));
        }
        out.push_str(newline);
    }
    out
}

fn with_query(uri: &str, query: &str) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

/// Every `URI="…"` attribute of a tag line gets the query.
fn tag_with_query(tag: &str, query: &str) -> String {
    const ATTRIBUTE: &str = "URI=\"";
    let mut out = String::with_capacity(tag.len() + query.len());
    let mut rest = tag;
    while let Some(at) = rest.find(ATTRIBUTE) {
        // `URI=` must start an attribute: after `:` or `,`.
        let starts = at == 0 || matches!(rest.as_bytes()[at - 1], b':' | b',');
        let value_start = at + ATTRIBUTE.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if !starts {
            continue;
        }
        let Some(end) = rest.find('"') else {
            break;
        };
        out.push_str(&with_query(&rest[..end], query));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::append_query;

    #[test]
    fn every_uri_of_a_low_latency_media_playlist() {
        let playlist = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PART:DURATION=0.333,URI=\"5.0.m4s\",INDEPENDENT=YES\n#EXTINF:2.000,\n5.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"6.0.m4s\"\n#EXT-X-RENDITION-REPORT:URI=\"../a1/media.m3u8\",LAST-MSN=6\n";
        let signed = append_query(playlist, "exp=9&sig=ab");
        assert_eq!(
            signed,
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?exp=9&sig=ab\"\n#EXT-X-PART:DURATION=0.333,URI=\"5.0.m4s?exp=9&sig=ab\",INDEPENDENT=YES\n#EXTINF:2.000,\n5.m4s?exp=9&sig=ab\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"6.0.m4s?exp=9&sig=ab\"\n#EXT-X-RENDITION-REPORT:URI=\"../a1/media.m3u8?exp=9&sig=ab\",LAST-MSN=6\n"
        );
    }

    #[test]
    fn multivariant_and_existing_queries() {
        let playlist = "#EXTM3U\r\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"a1/media.m3u8\"\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\nv1/media.m3u8?x=1\r\n";
        let signed = append_query(playlist, "sig=s");
        assert!(signed.contains("URI=\"a1/media.m3u8?sig=s\""));
        assert!(signed.contains("v1/media.m3u8?x=1&sig=s\r\n"), "{signed:?}");
        assert!(signed.contains("NAME=\"x\""), "other attributes untouched");
    }
}
