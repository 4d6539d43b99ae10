package cfssl

import (
	"os"

	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// AuthKeyEnv is the environment variable that CreateRoot reads the auth key
// from when the settings name neither a file nor a variable.
const AuthKeyEnv = "CHANCERY_CFSSL_AUTH_KEY"

// AuthKey is an HMAC-SHA-256 key shared with a CFSSL CA, as in the
// auth_keys section of CFSSL's configuration (type "standard"), for
// authsign (Config.AuthKey). Its Token method computes a request's token
// and Verify checks one in constant time. Whatever the verb, formatting an
// AuthKey prints "[redacted]": the key never reaches a message or a log by
// accident. It is also the type of package extca's Policy.AuthKeys.
type AuthKey = cfsslwire.AuthKey

// ParseAuthKey decodes a hex auth key, as CFSSL writes them; white space
// around it is ignored. Keys shorter than 16 bytes are refused. Its errors
// never quote the key.
func ParseAuthKey(hexKey []byte) (*AuthKey, error) { return cfsslwire.ParseAuthKey(hexKey) }

// ReadAuthKey reads a hex auth key from the file at path when path is not
// empty, else from the environment variable env. Errors name the file or
// variable, never the key.
func ReadAuthKey(path, env string) (*AuthKey, error) { return cfsslwire.ReadAuthKey(path, env) }

func envSet(name string) bool {
	v, ok := os.LookupEnv(name)
	return ok && v != ""
}
