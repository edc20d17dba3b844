package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// docs/configuration.md lists every setting with its flag and default, and
// nothing that is not a setting: the table is the operators' reference and
// must not drift from the code.
func TestConfigurationDocListsEverySetting(t *testing.T) {
	rows := settingRows(t, "../../docs/configuration.md")
	st := reflect.TypeOf(settings{})
	for i := 0; i < st.NumField(); i++ {
		name := st.Field(i).Tag.Get("env")
		if _, ok := rows[name]; !ok {
			t.Errorf("%s is not in docs/configuration.md", name)
		}
	}
}

// The README's short table and docs/configuration.md agree with the code:
// every row names a setting, its flag and its default.
func TestSettingTablesMatchTheCode(t *testing.T) {
	for _, file := range []string{"../../docs/configuration.md", "../../README.md"} {
		checkSettingRows(t, file, settingRows(t, file))
	}
}

// settingRows reads the "| TETHER_X | --flag | meaning | default |" rows.
func settingRows(t *testing.T, file string) map[string][]string {
	t.Helper()
	doc, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| TETHER_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 4 {
			t.Errorf("row %q: want 4 cells (env, flag, meaning, default)", line)
			continue
		}
		if _, dup := rows[cells[0]]; dup {
			t.Errorf("%s listed twice", cells[0])
		}
		rows[cells[0]] = cells
	}
	return rows
}

func checkSettingRows(t *testing.T, file string, rows map[string][]string) {
	t.Helper()
	st := reflect.TypeOf(settings{})
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		name := f.Tag.Get("env")
		row, ok := rows[name]
		if !ok {
			continue
		}
		delete(rows, name)
		if want := "--" + f.Tag.Get("flag"); row[1] != want {
			t.Errorf("%s: %s: flag %q in the doc, %q in the code", file, name, row[1], want)
		}
		def, hasDef := f.Tag.Lookup("envDefault")
		switch {
		case hasDef && row[3] != def:
			t.Errorf("%s: %s: default %q in the doc, %q in the code", file, name, row[3], def)
		case !hasDef && row[3] != "" && !strings.Contains(f.Tag.Get("help"), "default: "+row[3]):
			t.Errorf("%s: %s: the doc gives default %q, the code none", file, name, row[3])
		}
	}
	for name := range rows {
		t.Errorf("%s lists %s, which is not a setting", file, name)
	}
}
