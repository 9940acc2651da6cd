"""Pure domain types, no I/O: dialogs and eval sets, replay steps, tool calls, answers, GT metrics, UI strings."""
