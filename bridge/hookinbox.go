package bridge

// turnContext hands over, at a turn boundary of a runtime that runs
// command hooks, what the inbox holds: the same text, levels, overflow
// note and delimiting as Claude Code's inbox_hook, marked read because it
// is handed out. Empty when nothing is unread, or without an inbox
// (delivery "push").
func (b *Bridge) turnContext() string {
	if b.inbox == nil {
		return ""
	}
	bt := b.inbox.take(hookMax)
	return bt.text("arrived (delivered by a hook at this turn boundary)")
}
