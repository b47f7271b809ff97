//! Admin HTTP port: `/metrics`, `/healthz`, `/readyz`.
