//! The scaler's own configuration: file + environment + flags, validated once at start-up.
