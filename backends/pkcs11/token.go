//go:build cgo

package pkcs11

import (
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// findToken returns the one initialized token that matches the URI's token
// label and serial. Slots whose token cannot be read are skipped.
func findToken(p *pkcs11.Ctx, u *URI) (pkcs11.TokenInfo, uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return pkcs11.TokenInfo{}, 0, &Error{Msg: "failed to list the module's slots", Err: err}
	}
	var (
		found   []pkcs11.TokenInfo
		slotIDs []uint
		labels  []string
	)
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q", ti.Label))
		if (u.Token != "" && ti.Label != u.Token) || (u.Serial != "" && ti.SerialNumber != u.Serial) {
			continue
		}
		found = append(found, ti)
		slotIDs = append(slotIDs, s)
	}
	want := describeTokenSelector(u)
	switch len(found) {
	case 0:
		present := "the module has no initialized token"
		if len(labels) > 0 {
			present = "tokens present: " + strings.Join(labels, ", ")
		}
		return pkcs11.TokenInfo{}, 0, &Error{Kind: ErrTokenNotFound,
			Msg:    fmt.Sprintf("no token with %s in module %s (%s)", want, u.ModulePath, present),
			Advice: "check token= and serial= in the URI, and that the token is plugged in; list tokens with `pkcs11-tool --module " + u.ModulePath + " --list-token-slots`"}
	case 1:
		return found[0], slotIDs[0], nil
	}
	serials := make([]string, len(found))
	for i, ti := range found {
		serials[i] = ti.SerialNumber
	}
	return pkcs11.TokenInfo{}, 0, &Error{Kind: ErrAmbiguous,
		Msg:    fmt.Sprintf("%d tokens have %s (serials %s)", len(found), want, strings.Join(serials, ", ")),
		Advice: "token labels need not be unique: add serial=SERIAL to the URI"}
}

func describeTokenSelector(u *URI) string {
	switch {
	case u.Token != "" && u.Serial != "":
		return fmt.Sprintf("label %q and serial %q", u.Token, u.Serial)
	case u.Serial != "":
		return fmt.Sprintf("serial %q", u.Serial)
	}
	return fmt.Sprintf("label %q", u.Token)
}

// login logs the session's token in as the user, and tells a wrong PIN
// from other failures. Already being logged in (by another session of this
// process) is success.
func login(p *pkcs11.Ctx, sh pkcs11.SessionHandle, tok pkcs11.TokenInfo, pin string, from pinFrom) error {
	if pin == "" {
		return &Error{Kind: ErrNoPIN, Msg: fmt.Sprintf("token %q needs a user PIN and none was given", tok.Label),
			Advice: "add pin-source=FILE or pin-env=NAME to the URI, or set $" + PINEnv}
	}
	err := p.Login(sh, pkcs11.CKU_USER, pin)
	if err == nil || isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		return nil
	}
	src := ""
	if from != "" {
		src = " from " + string(from)
	}
	switch {
	case isCKR(err, pkcs11.CKR_PIN_INCORRECT), isCKR(err, pkcs11.CKR_PIN_INVALID), isCKR(err, pkcs11.CKR_PIN_LEN_RANGE):
		return &Error{Kind: ErrWrongPIN, Msg: fmt.Sprintf("token %q refused the PIN%s", tok.Label, src), Err: err,
			Advice: "check the PIN; tokens lock the PIN after a few wrong tries"}
	case isCKR(err, pkcs11.CKR_PIN_LOCKED), isCKR(err, pkcs11.CKR_PIN_EXPIRED):
		return &Error{Kind: ErrWrongPIN, Msg: fmt.Sprintf("the user PIN of token %q is locked or expired", tok.Label), Err: err,
			Advice: "the token's security officer must unlock or reset it (pkcs11-tool --unlock-pin --login --login-type so)"}
	case isCKR(err, pkcs11.CKR_USER_PIN_NOT_INITIALIZED):
		return &Error{Kind: ErrWrongPIN, Msg: fmt.Sprintf("token %q has no user PIN yet", tok.Label), Err: err,
			Advice: "set it with `pkcs11-tool --init-pin --login --login-type so`"}
	}
	return &Error{Msg: fmt.Sprintf("failed to log in to token %q", tok.Label), Err: err}
}

// keyTemplate is the search template for the URI's private key.
func keyTemplate(u *URI) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	if u.Object != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	return t
}

// countKeys counts the private keys that match the URI, up to 2.
func countKeys(p *pkcs11.Ctx, sh pkcs11.SessionHandle, u *URI) (int, error) {
	if u.Object == "" && len(u.ID) == 0 {
		return 0, nil
	}
	if err := p.FindObjectsInit(sh, keyTemplate(u)); err != nil {
		return 0, err
	}
	hs, _, err := p.FindObjects(sh, 2)
	if ferr := p.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	return len(hs), err
}
