//! ComfyUI's `/ws?clientId=` progress channel (feature `comfyui-ws`). Without the
//! feature, or when the socket cannot be opened or drops, the client polls
//! `/history/{prompt_id}` instead.

use url::Url;

/// An open progress channel.
pub(crate) struct Progress {
    #[cfg(feature = "comfyui-ws")]
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// The websocket URL for `base` and `client_id`.
pub(crate) fn ws_url(base: &Url, client_id: &str) -> Option<Url> {
    let mut url = base.clone();
    let scheme = match base.scheme() {
        "http" => "ws",
        "https" => "wss",
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    let path = format!("{}/ws", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.query_pairs_mut().append_pair("clientId", client_id);
    Some(url)
}

impl Progress {
    /// Connect, or say why not.
    #[cfg(feature = "comfyui-ws")]
    pub async fn open(url: &Url) -> Result<Progress, String> {
        if url.scheme() == "wss" {
            return Err("wss:// progress needs TLS, which the websocket client is built without; polling instead".into());
        }
        let connect = tokio_tungstenite::connect_async(url.as_str());
        match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
            Ok(Ok((stream, _))) => Ok(Progress { stream }),
            Ok(Err(e)) => Err(format!("websocket {url}: {e}")),
            Err(_) => Err(format!("websocket {url}: no answer in 10 s")),
        }
    }

    /// Without the `comfyui-ws` feature there is no channel: poll.
    #[cfg(not(feature = "comfyui-ws"))]
    pub async fn open(_url: &Url) -> Result<Progress, String> {
        Err("built without the comfyui-ws feature; polling".into())
    }

    /// The next text frame; `None` when the connection closed or failed.
    #[cfg(feature = "comfyui-ws")]
    pub async fn next_text(&mut self) -> Option<String> {
        use futures::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.stream.next().await? {
                Ok(Message::Text(t)) => return Some(t.as_str().to_string()),
                Ok(Message::Close(_)) | Err(_) => return None,
                // Binary frames are previews; pings are answered by the library.
                Ok(_) => continue,
            }
        }
    }

    /// Without the feature a channel is never open.
    #[cfg(not(feature = "comfyui-ws"))]
    pub async fn next_text(&mut self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_url_follows_the_base() {
        let u = ws_url(&Url::parse("https://gpu.lan/comfy/").unwrap(), "c1").unwrap();
        assert_eq!(u.as_str(), "wss://gpu.lan/comfy/ws?clientId=c1");
        let u = ws_url(&Url::parse("http://127.0.0.1:8188").unwrap(), "c1").unwrap();
        assert_eq!(u.as_str(), "ws://127.0.0.1:8188/ws?clientId=c1");
    }
}
