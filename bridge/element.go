package bridge

import (
	"regexp"
	"strings"
)

// attrEscaper escapes an attribute value the way Claude Code does when it
// renders a channel notification.
var attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

// closingTag matches what Claude Code neutralizes in a notification's
// content: "</channel" in any case, followed by '>', white space, '/' or
// the end of the text.
var closingTag = regexp.MustCompile(`(?i)</(channel)([>\s/]|$)`)

// neutralize changes every closing tag in s to "<\/channel", so the
// content can never end the element it is wrapped in.
func neutralize(s string) string {
	return closingTag.ReplaceAllString(s, `<\/$1$2`)
}

// metaKey is what Claude Code accepts as a meta key; others are dropped.
var metaKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// element renders notification params ({content, meta}) exactly as Claude
// Code shows a notifications/claude/channel to the model:
//
//	<channel source="conclave" k1="v1" …>
//	content
//	</channel>
//
// Attribute values are entity-escaped, meta keys that are not
// identifiers (or are "source") are dropped, and "</channel" inside the
// content is neutralized; so a body can forge neither the header, nor an
// attribute, nor the end of the element. This is the form the inbox
// delivers in, so that a session without channels reads the same thing.
func element(source string, params map[string]any) string {
	var sb strings.Builder
	sb.WriteString(`<channel source="`)
	sb.WriteString(attrEscaper.Replace(source))
	sb.WriteByte('"')
	if m, ok := params["meta"].(meta); ok {
		for _, f := range m {
			if f.key == "source" || !metaKey.MatchString(f.key) {
				continue
			}
			sb.WriteByte(' ')
			sb.WriteString(f.key)
			sb.WriteString(`="`)
			sb.WriteString(attrEscaper.Replace(f.value))
			sb.WriteByte('"')
		}
	}
	sb.WriteString(">\n")
	content, _ := params["content"].(string)
	sb.WriteString(neutralize(content))
	sb.WriteString("\n</channel>")
	return sb.String()
}
