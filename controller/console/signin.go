package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/waystation/waystation/controller"
)

// signInPage shows the sign-in form; a signed-in browser goes on.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, _, err := c.o.Sessions.FromRequest(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.write(w, http.StatusOK, "signin", view{Title: "Sign in", TZ: c.o.Location.String(),
		Now: c.now(), Data: safeNext(r.URL.Query().Get("next"))})
}

// signIn checks the operator token and sets the session cookie. The form
// has no session to carry a CSRF token yet, so the origin check alone
// keeps other sites from signing a browser in.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		c.denied.WithLabelValues("csrf").Inc()
		c.fail(w, r, http.StatusForbidden, "This form did not come from this console.")
		return
	}
	value, sess, op, err := c.o.Sessions.SignIn(strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		code := http.StatusInternalServerError
		msg := "Signing in failed: " + err.Error()
		if errors.Is(err, controller.ErrUnauthorized) {
			c.signIns.WithLabelValues("refused").Inc()
			code, msg = http.StatusUnauthorized, "That token is not an operator's token, "+
				"or it was revoked."
		}
		c.write(w, code, "signin", view{Title: "Sign in", Error: msg, TZ: c.o.Location.String(),
			Now: c.now(), Data: next})
		return
	}
	c.signIns.WithLabelValues("ok").Inc()
	c.log.Info("console sign-in", "operator", op.Name, "role", op.Role)
	http.SetCookie(w, &http.Cookie{
		// MaxAge, not Expires: the controller's clock may be a simulated one.
		Name: controller.SessionCookie, Value: value, Path: "/",
		MaxAge:   max(int(sess.Expires.Sub(c.o.Now()).Seconds()), 1),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.o.Secure,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut ends the session; it needs the session's CSRF token so another
// site cannot sign a monitor out in the middle of the night.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	cookie, err := r.Cookie(controller.SessionCookie)
	if err == nil {
		op, sess, err := c.o.Sessions.Lookup(cookie.Value)
		if err == nil {
			if !sameOrigin(r) || !sess.CheckCSRF(r.PostFormValue("csrf")) {
				c.denied.WithLabelValues("csrf").Inc()
				c.fail(w, r, http.StatusForbidden, "This form is out of date: reload and try again.")
				return
			}
			if err := c.o.Sessions.SignOut(cookie.Value); err != nil {
				c.log.Error("sign out", "operator", op.Name, "err", err)
			}
			c.log.Info("console sign-out", "operator", op.Name)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: controller.SessionCookie, Value: "", Path: "/",
		MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.o.Secure})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// safeNext keeps a redirect after sign-in on this console: a path, never
// another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}
