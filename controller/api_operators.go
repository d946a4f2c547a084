package controller

import (
	"errors"
	"net/http"
)

// handleOperators adds the routes that manage operators. Only admins may
// call them, and only on operators whose whole scope lies within their own:
// an admin of one organisation manages that organisation's people.
func (a *API) handleOperators() {
	a.handle("GET /api/v1/operators", PermOperators, a.listOperators)
	a.handle("POST /api/v1/operators", PermOperators, a.addOperator)
	a.handle("DELETE /api/v1/operators/{name}", PermOperators, a.revokeOperator)
}

// NewOperator is the answer to adding an operator: the operator and its
// token, which is shown this once.
type NewOperator struct {
	Operator
	Token string `json:"token"`
}

func (a *API) listOperators(w http.ResponseWriter, r *http.Request, op Operator) {
	out := []Operator{}
	for _, o := range a.o.Operators.List() {
		if op.Covers(o.Orgs) {
			out = append(out, o)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) addOperator(w http.ResponseWriter, r *http.Request, op Operator) {
	var in struct {
		Name string   `json:"name"`
		Role string   `json:"role"`
		Orgs []string `json:"orgs"`
	}
	if err := readJSON(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !op.Covers(in.Orgs) {
		a.deny(w, r, op, DeniedScope, "operator "+op.Name+" may give only a scope within its own")
		return
	}
	token, added, err := a.o.Operators.Issue(Operator{Name: in.Name, Role: in.Role, Orgs: in.Orgs})
	if err != nil {
		writeOperatorError(w, err)
		return
	}
	a.log.Info("operator added", "operator", added.Name, "role", added.Role, "orgs", added.Orgs,
		"by", op.Name)
	writeJSON(w, http.StatusCreated, NewOperator{Operator: added, Token: token})
}

func (a *API) revokeOperator(w http.ResponseWriter, r *http.Request, op Operator) {
	target, err := a.o.Operators.Get(r.PathValue("name"))
	if err != nil {
		writeOperatorError(w, err)
		return
	}
	if !op.Covers(target.Orgs) {
		a.deny(w, r, op, DeniedScope, "operator "+target.Name+" has a scope wider than that of "+
			"operator "+op.Name)
		return
	}
	revoked, err := a.o.Operators.Revoke(target.Name)
	if err != nil {
		writeOperatorError(w, err)
		return
	}
	a.log.Info("operator revoked", "operator", revoked.Name, "by", op.Name)
	writeJSON(w, http.StatusOK, revoked)
}

func writeOperatorError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInvalidOperator):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrOperatorNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrOperatorExists), errors.Is(err, ErrFirstAdmin):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
