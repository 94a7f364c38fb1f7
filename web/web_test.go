package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAssetsAreServedFromThisOriginOnly(t *testing.T) {
	h := Handler()
	for _, a := range Assets() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/web/"+a.Name, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Security-Policy") != CSP {
			t.Fatalf("%s: %d %v", a.Name, rec.Code, rec.Header())
		}
		body := rec.Body.String()
		// Nothing may point at another origin: no absolute http(s) URL in
		// a src, href, import or fetch of the page's own files.
		for _, bad := range []string{`src="http`, `href="http`, `from "http`, `import("http`, "fetch(", "XMLHttpRequest", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", a.Name, bad)
			}
		}
	}
	if len(Assets()) < 5 {
		t.Fatalf("assets: %v", Assets())
	}
}

func TestMethodsAndMissingFiles(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/web/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/web/../../etc/passwd", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("traversal: %d", rec.Code)
	}
}
