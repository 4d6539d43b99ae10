package backends

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/signer"
)

// fakeBackend declares the flags its declare function does.
type fakeBackend struct {
	declare func(fs *pflag.FlagSet) FlagParser
}

func (fakeBackend) CreateRoot(context.Context, CreateRootRequest) (signer.Signer, Settings, error) {
	return nil, nil, errors.New("fake")
}

func (fakeBackend) Open(context.Context, OpenRequest) (signer.Signer, error) {
	return nil, errors.New("fake")
}

func (b fakeBackend) Flags(fs *pflag.FlagSet) FlagParser { return b.declare(fs) }

// flagless is a backend without flags.
type flagless struct{}

func (flagless) CreateRoot(context.Context, CreateRootRequest) (signer.Signer, Settings, error) {
	return nil, nil, errors.New("fake")
}

func (flagless) Open(context.Context, OpenRequest) (signer.Signer, error) {
	return nil, errors.New("fake")
}

// stringFlags declares one string flag per setting, each --NAME-SETTING,
// and gives the settings of those that are set; refuse, when not nil,
// checks the root options first.
func stringFlags(name string, settings []string, refuse func(RootOptions) error) func(fs *pflag.FlagSet) FlagParser {
	return func(fs *pflag.FlagSet) FlagParser {
		values := map[string]*string{}
		for _, s := range settings {
			values[s] = fs.String(name+"-"+s, "", "the "+s+" setting")
		}
		return FlagParserFunc(func(opts RootOptions) (Settings, error) {
			if refuse != nil {
				if err := refuse(opts); err != nil {
					return nil, err
				}
			}
			out := Settings{}
			for s, v := range values {
				if *v != "" {
					out[s] = *v
				}
			}
			return out, nil
		})
	}
}

// The registry of this package's tests: Default and two backends with
// flags, one that refuses an imported key, and one without flags.
func init() {
	Register(Default, fakeBackend{stringFlags(Default, []string{"pass"}, nil)})
	Register("alpha", fakeBackend{stringFlags("alpha", []string{"addr", "mount"}, nil)})
	Register("beta", fakeBackend{stringFlags("beta", []string{"uri"}, func(o RootOptions) error {
		if o.Key {
			return &FlagError{Msg: "--ca-key cannot be used with beta", Advice: "give --ca-cert alone"}
		}
		return nil
	})})
	Register("gamma", flagless{})
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		opts     RootOptions
		backend  string
		settings Settings
		err      string // the error, when one is wanted
		hint     string
	}{
		{name: "NoFlags", backend: Default, settings: Settings{}},
		{name: "DefaultsFlags", args: []string{"--file-pass", "p"}, backend: Default, settings: Settings{"pass": "p"}},
		{name: "OneFlag", args: []string{"--beta-uri", "u"}, backend: "beta", settings: Settings{"uri": "u"}},
		{name: "SeveralFlags", args: []string{"--alpha-mount", "m", "--alpha-addr", "a"}, backend: "alpha", settings: Settings{"addr": "a", "mount": "m"}},
		{name: "EmptyValueSelects", args: []string{"--alpha-mount="}, backend: "alpha", settings: Settings{}},
		{name: "BackendNamed", args: []string{"--backend", "alpha"}, backend: "alpha", settings: Settings{}},
		{name: "BackendNamedAndFlags", args: []string{"--backend", "beta", "--beta-uri", "u"}, backend: "beta", settings: Settings{"uri": "u"}},
		{name: "DefaultNamed", args: []string{"--backend", Default, "--file-pass", "p"}, backend: Default, settings: Settings{"pass": "p"}},
		{name: "EmptyBackendIsDefault", args: []string{"--backend="}, backend: Default, settings: Settings{}},
		{name: "WithoutFlags", args: []string{"--backend", "gamma"}, backend: "gamma", settings: Settings{}},
		{name: "Unknown", args: []string{"--backend", "delta"}, backend: "delta", settings: Settings{}},
		{name: "RootOptions", args: []string{"--beta-uri", "u"}, opts: RootOptions{Cert: true, CommonName: true, KeyAlgorithm: true}, backend: "beta", settings: Settings{"uri": "u"}},

		{name: "TwoBackends", args: []string{"--beta-uri", "u", "--alpha-addr", "a"},
			err: "--alpha-addr and --beta-uri each choose a backend: give one", hint: "the root lives in one place: give the flags of one backend, alpha or beta"},
		{name: "TwoBackendsAndDefault", args: []string{"--beta-uri", "u", "--alpha-addr", "a", "--file-pass", "p"},
			err: "--alpha-addr and --beta-uri each choose a backend: give one", hint: "alpha or beta"},
		{name: "DefaultsFlagWithAnother", args: []string{"--file-pass", "p", "--alpha-addr", "a"}, err: "--file-pass applies to the file backend only"},
		{name: "DefaultsFlagWithNamed", args: []string{"--backend", "gamma", "--file-pass", "p"}, err: "--file-pass applies to the file backend only"},
		{name: "FlagsOfAnotherThanNamed", args: []string{"--backend", "gamma", "--alpha-addr", "a"}, err: `--alpha-addr uses the alpha backend, not "gamma"`},
		{name: "FlagsOfAnotherThanDefault", args: []string{"--backend", Default, "--beta-uri", "u"}, err: `--beta-uri uses the beta backend, not "file"`},
		{name: "RefusedByBackend", args: []string{"--beta-uri", "u"}, opts: RootOptions{Key: true}, err: "--ca-key cannot be used with beta", hint: "give --ca-cert alone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			c := DeclareFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			name, s, err := c.Select(tc.opts)
			if tc.err != "" {
				var fe *FlagError
				if !errors.As(err, &fe) || fe.Msg != tc.err || !strings.Contains(fe.Hint(), tc.hint) {
					t.Fatalf("Select: %#v, %v; want *FlagError %q with hint %q", name, err, tc.err, tc.hint)
				}
				if err.Error() != tc.err {
					t.Errorf("Error() = %q, want the message alone", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != tc.backend || !reflect.DeepEqual(s, tc.settings) {
				t.Errorf("Select = %q, %v; want %q, %v", name, s, tc.backend, tc.settings)
			}
		})
	}
}

// TestDeclareFlags checks that every backend's flags and --backend are
// declared, and that a flag declared twice is refused.
func TestDeclareFlags(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	DeclareFlags(fs)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	want := []string{"alpha-addr", "alpha-mount", "backend", "beta-uri", "file-pass"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("flags %v, want %v", names, want)
	}
	if b := fs.Lookup("backend"); b.DefValue != Default || !strings.Contains(b.Usage, "[alpha beta file gamma]") {
		t.Errorf("--backend: default %q, usage %q", b.DefValue, b.Usage)
	}

	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "--beta-uri of backend beta is declared twice") {
			t.Errorf("a flag declared twice: panic %v", r)
		}
	}()
	fs = pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("beta-uri", "", "")
	DeclareFlags(fs)
}

func TestJoinList(t *testing.T) {
	for _, tc := range []struct {
		items []string
		want  string
	}{
		{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a or b"}, {[]string{"a", "b", "c"}, "a, b or c"},
	} {
		if got := joinList(tc.items, "or"); got != tc.want {
			t.Errorf("joinList(%q) = %q, want %q", tc.items, got, tc.want)
		}
	}
}
