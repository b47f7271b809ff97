//! A `MONITOR` capture: a raw connection that records every command the server executes,
//! to check what the scaler sent.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    stream: TcpStream,
    reader: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts `MONITOR` on `127.0.0.1:port` (as the default user, optionally with a password).
    pub fn start(port: u16, password: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("monitor connect");
        if let Some(pw) = password {
            write!(stream, "AUTH {pw}\r\n").expect("auth");
        }
        stream.write_all(b"MONITOR\r\n").expect("monitor");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let read = stream.try_clone().expect("clone stream");
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(read);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => return,
                    Ok(_) => sink
                        .lock()
                        .expect("lines")
                        .push(line.trim_end().to_string()),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        Monitor {
            lines,
            stream,
            reader: Some(reader),
        }
    }

    /// Stops the capture and returns every line.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let lines = self.lines.lock().expect("lines").clone();
        lines
    }
}

/// The command name (upper-case) of a MONITOR line `+ts [db addr] "CMD" "arg" ...`.
pub fn command_of(line: &str) -> Option<String> {
    let start = line.find("] \"")? + 3;
    let rest = &line[start..];
    let end = rest.find('"')?;
    Some(rest[..end].to_ascii_uppercase())
}

/// The client address of a MONITOR line.
pub fn client_of(line: &str) -> Option<String> {
    let open = line.find('[')?;
    let close = line[open..].find(']')? + open;
    line[open + 1..close]
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}
