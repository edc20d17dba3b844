package gossip

// countQueryMsg is the body of msgCountQuery: [sender, id, replica].
type countQueryMsg struct {
	Sender  string
	ID      uint64
	Replica string
}

// countAnswerMsg is the body of msgCountAnswer: [sender, id, live].
type countAnswerMsg struct {
	Sender string
	ID     uint64
	Live   uint64
}

func encodeCountQuery(m countQueryMsg) []byte {
	w := getWriter(msgCountQuery)
	defer putWriter(w)
	w.str(m.Sender)
	w.uint(m.ID)
	w.str(m.Replica)
	return w.bytes()
}

func decodeCountQuery(body []byte, caps *Caps) (countQueryMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	m := countQueryMsg{Sender: r.str(maxNameLen, "sender"), ID: r.uint(maxSeq, "id"), Replica: r.str(maxNameLen, "replica")}
	if r.err == nil && (m.Sender == "" || m.Replica == "") {
		r.fail(ErrMalformed, "count query with an empty name")
	}
	r.end()
	if r.err != nil {
		return countQueryMsg{}, r.err
	}
	return m, nil
}

func encodeCountAnswer(m countAnswerMsg) []byte {
	w := getWriter(msgCountAnswer)
	defer putWriter(w)
	w.str(m.Sender)
	w.uint(m.ID)
	w.uint(m.Live)
	return w.bytes()
}

func decodeCountAnswer(body []byte, caps *Caps) (countAnswerMsg, error) {
	r := newReader(body, caps)
	defer r.release()
	m := countAnswerMsg{Sender: r.str(maxNameLen, "sender"), ID: r.uint(maxSeq, "id"), Live: r.uint(maxSeq, "live")}
	if r.err == nil && m.Sender == "" {
		r.fail(ErrMalformed, "count answer with an empty sender")
	}
	r.end()
	if r.err != nil {
		return countAnswerMsg{}, r.err
	}
	return m, nil
}
