package backends

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/hint"
)

// Default is the backend that holds the root when no flag selects another:
// a key file in the data directory.
const Default = "file"

// flagBackend names a backend outright, whatever flags are given.
const flagBackend = "backend"

// FlagDeclarer is implemented by a registered Backend that takes
// command-line flags: each flag a setting a user may give (a URI, an
// address, a file naming a secret). A command declares the flags of every
// backend with DeclareFlags, and the flags given select the backend.
type FlagDeclarer interface {
	// Flags declares the backend's flags on fs, each empty by default, and
	// returns what reads them once the command line is parsed.
	Flags(fs *pflag.FlagSet) FlagParser
}

// FlagParser reads a backend's flags once the command line is parsed.
type FlagParser interface {
	// Settings returns the settings the backend's flags give. It is called
	// for the selected backend only, which may have none of its flags given
	// (when --backend names it). It refuses, with a *FlagError, the root
	// options that do not apply to the backend and settings that are
	// missing.
	Settings(opts RootOptions) (Settings, error)
}

// FlagParserFunc is a function that is a FlagParser.
type FlagParserFunc func(opts RootOptions) (Settings, error)

// Settings calls f.
func (f FlagParserFunc) Settings(opts RootOptions) (Settings, error) { return f(opts) }

// RootOptions say which of the options every backend shares (the fields of
// CreateRootRequest besides Settings) a command line gives, so that a
// backend can refuse those that do not apply to it. Each names its flag.
type RootOptions struct {
	// Cert is whether an existing root's certificate is given (--ca-cert).
	Cert bool
	// Key is whether an existing root's private key is given (--ca-key).
	Key bool
	// CommonName is whether a new root's common name is given
	// (--ca-common-name).
	CommonName bool
	// KeyAlgorithm is whether a new root key's algorithm is given
	// (--ca-key-algorithm).
	KeyAlgorithm bool
}

// FlagError is a mistake in the flags that choose a backend or set its
// settings. Its Error is Msg alone; Advice is its Hint (hint.Hinter), which
// a command line prints on a line of its own.
type FlagError struct {
	// Msg says what was wrong.
	Msg string
	// Advice says what to give instead; it may be empty.
	Advice string
}

func (e *FlagError) Error() string { return e.Msg }

// Hint returns Advice.
func (e *FlagError) Hint() string { return e.Advice }

var _ hint.Hinter = (*FlagError)(nil)

// CommandFlags are the backend flags of one command: --backend, and the
// flags of every registered backend that declares some (FlagDeclarer).
type CommandFlags struct {
	backend  *pflag.Flag
	declared []declared // by backend name
}

// declared are one backend's flags.
type declared struct {
	name   string
	flags  *pflag.FlagSet
	parser FlagParser
}

// given returns the name of the first of d's flags that the command line
// sets, or "".
func (d declared) given() string {
	first := ""
	d.flags.VisitAll(func(f *pflag.Flag) {
		if first == "" && f.Changed {
			first = f.Name
		}
	})
	return first
}

// DeclareFlags declares on fs --backend and the flags of every registered
// backend that declares some, and returns them, to be read by Select once
// fs is parsed. Call it once per flag set, once the backends registered
// themselves (their packages' init functions ran): a backend registered
// later has no flags on fs. It panics if a backend declares a flag that fs
// has already, as that is a programming error.
func DeclareFlags(fs *pflag.FlagSet) *CommandFlags {
	mu.RLock()
	names := namesLocked()
	registered := make([]Backend, len(names))
	for i, name := range names {
		registered[i] = registry[name]
	}
	mu.RUnlock()

	c := &CommandFlags{}
	fs.String(flagBackend, Default, "where the root key lives: "+fmt.Sprint(names))
	c.backend = fs.Lookup(flagBackend)
	for i, name := range names {
		fd, ok := registered[i].(FlagDeclarer)
		if !ok {
			continue
		}
		own := pflag.NewFlagSet(name, pflag.ContinueOnError)
		parser := fd.Flags(own)
		own.VisitAll(func(f *pflag.Flag) {
			if fs.Lookup(f.Name) != nil {
				panic("backends: flag --" + f.Name + " of backend " + name + " is declared twice")
			}
			fs.AddFlag(f)
		})
		c.declared = append(c.declared, declared{name: name, flags: own, parser: parser})
	}
	return c
}

// Select returns the backend that the parsed command line selects and the
// settings its flags give. A backend's flags select it; with none given,
// --backend names the backend, Default unless set. It refuses, with a
// *FlagError, the flags of two backends, --backend naming another backend
// than the flags do, and whatever the selected backend's FlagParser
// refuses (opts that do not apply to it, missing settings).
//
// A backend that declares no flags, or a name that is not registered, gets
// empty settings: opening the backend says whether it exists.
func (c *CommandFlags) Select(opts RootOptions) (name string, s Settings, err error) {
	var (
		def    string   // the flag given of Default's, if any
		others []string // the backends other than Default whose flags are given
		flag   = map[string]string{}
	)
	for _, d := range c.declared {
		f := d.given()
		switch {
		case f == "":
		case d.name == Default:
			def = f
		default:
			others = append(others, d.name)
			flag[d.name] = f
		}
	}
	name = Default
	switch {
	case len(others) > 1:
		flags := make([]string, len(others))
		for i, o := range others {
			flags[i] = "--" + flag[o]
		}
		return "", nil, &FlagError{
			Msg:    fmt.Sprintf("%s each choose a backend: give one", joinList(flags, "and")),
			Advice: "the root lives in one place: give the flags of one backend, " + joinList(others, "or"),
		}
	case len(others) == 1 && def != "":
		return "", nil, &FlagError{Msg: fmt.Sprintf("--%s applies to the %s backend only", def, Default)}
	case len(others) == 1:
		name = others[0]
	}
	if named := c.backend.Value.String(); c.backend.Changed && named != "" && named != name {
		switch {
		case def != "":
			return "", nil, &FlagError{Msg: fmt.Sprintf("--%s applies to the %s backend only", def, Default)}
		case len(others) == 1:
			return "", nil, &FlagError{Msg: fmt.Sprintf("--%s uses the %s backend, not %q", flag[name], name, named)}
		}
		name = named
	}
	for _, d := range c.declared {
		if d.name == name {
			s, err := d.parser.Settings(opts)
			if err != nil {
				return "", nil, err
			}
			return name, s, nil
		}
	}
	return name, Settings{}, nil
}

// joinList joins items as a sentence does: "a", "a and b", "a, b and c".
func joinList(items []string, conj string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

// Given reports whether the command line sets --backend or any backend's
// flag: a root rotation without them makes its new root in the current
// backend.
func (c *CommandFlags) Given() bool {
	if c.backend != nil && c.backend.Changed {
		return true
	}
	for _, d := range c.declared {
		if d.given() != "" {
			return true
		}
	}
	return false
}
