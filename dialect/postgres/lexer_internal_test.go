package postgres

import (
	"reflect"
	"testing"
)

func TestIdentifiers(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{`NEW.Email := lower(NEW."Email");`, []string{"new", "email", "lower", "new", "Email"}},
		{`x -- y z` + "\n" + `w`, []string{"x", "w"}},
		{`a /* b /* c */ d */ e`, []string{"a", "e"}},
		{`'it''s a' b`, []string{"b"}},
		{`E'\' c' d`, []string{"d"}},
		{`e 'f'`, []string{"e"}},
		{`X'ff' B'01' N'n' g`, []string{"g"}},
		{`U&'\0061' U&"d\0061t" h`, []string{`d\0061t`, "h"}},
		{`$$ a $$ b $tag$ c $$ d $tag$ e`, []string{"b", "e"}},
		{`$1 + f$1`, []string{"f$1"}},
		{`"we]ird col" "a""b"`, []string{"we]ird col", `a"b`}},
		{`12e3 x1 _y`, []string{"x1", "_y"}},
		{`Grüße`, []string{"grüße"}},
		{`'unterminated`, nil},
		{`/* unterminated`, nil},
		{`$q$ unterminated`, nil},
	} {
		if got := identifiers(tc.src); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("identifiers(%q) = %q, want %q", tc.src, got, tc.want)
		}
	}
}
