//! What a command returns: nothing, or an error printed for the operator (`error: …`, exit status
//! 1). Shared by every command module of the command line, and importing none of them.

/// A command failure, printed for the operator.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// A command's outcome.
pub type CliResult = Result<(), CliError>;
