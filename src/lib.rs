//! Auditex service.
