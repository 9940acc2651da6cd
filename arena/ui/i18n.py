"""UI strings in Korean (default) and English. Keys are short English identifiers."""

from __future__ import annotations

LANGS = ("ko", "en")

STRINGS: dict[str, dict[str, str]] = {
    "title": {"ko": "아레나 — 한국어 LLM 평가", "en": "Arena — Korean LLM evaluation"},
    "switch_lang": {"ko": "[English](/en/)", "en": "[한국어](/)"},
    "tab_overview": {"ko": "개요", "en": "Overview"},
    "tab_replay": {"ko": "대본 재현 평가", "en": "Replay"},
    "tab_live": {"ko": "실시간 비교", "en": "Live side-by-side"},
    "eval_sets": {"ko": "평가 세트", "en": "Eval sets"},
    "models": {"ko": "모델", "en": "Models"},
    "col_eval_set": {"ko": "평가 세트", "en": "eval set"},
    "col_dialogs": {"ko": "대화 수", "en": "dialogs"},
    "col_turns": {"ko": "정답(GT) 턴 수", "en": "GT turns"},
    "col_categories": {"ko": "분류", "en": "categories"},
    "col_model": {"ko": "모델", "en": "model"},
    "col_kind": {"ko": "종류", "en": "kind"},
    "col_target": {"ko": "위치", "en": "target"},
    "col_status": {"ko": "상태", "en": "status"},
    "healthy": {"ko": "정상", "en": "healthy"},
    "role_user": {"ko": "사용자", "en": "User"},
    "role_assistant": {"ko": "어시스턴트 (정답)", "en": "Assistant (reference)"},
    "role_model": {"ko": "모델", "en": "Model"},
    "role_tool": {"ko": "도구 응답", "en": "Tool result"},
    "role_system": {"ko": "시스템", "en": "System"},
    "tool_call": {"ko": "도구 호출", "en": "Tool call"},
    "tool_result": {"ko": "도구 응답", "en": "Tool result"},
    "empty_answer": {"ko": "(빈 답변)", "en": "(empty answer)"},
    "side_error": {"ko": "이 모델은 답변하지 못했습니다.", "en": "This model failed to answer."},
    "side_error_excluded": {"ko": "이 답변은 평가에서 제외됩니다.", "en": "This side is excluded from rating."},
    "no_gt": {"ko": "정답(GT)이 없는 턴입니다.", "en": "No ground truth for this turn."},
    "gt": {"ko": "정답(GT) 비교", "en": "Ground truth diff"},
    "match": {"ko": "일치", "en": "match"},
    "mismatch": {"ko": "불일치", "en": "mismatch"},
    "similarity": {"ko": "유사도", "en": "similarity"},
    "tool_name": {"ko": "함수 이름", "en": "function name"},
    "tool_args": {"ko": "인자", "en": "arguments"},
    "repeats_earlier": {"ko": "이전 턴 반복", "en": "repeats an earlier turn"},
    "tokens": {"ko": "토큰", "en": "tokens"},
    "eval_set": {"ko": "평가 세트", "en": "Eval set"},
    "dialog": {"ko": "대화", "en": "Dialog"},
    "turn": {"ko": "평가할 턴", "en": "Turn to answer"},
    "turn_label": {"ko": "{n}번 턴", "en": "turn {n}"},
    "open_turn": {"ko": "정답 없음", "en": "no GT"},
    "models_pick": {"ko": "비교할 모델 (2–4개)", "en": "Models to compare (2–4)"},
    "next_unrated": {"ko": "다음 미평가 턴 ▶", "en": "Next unrated turn ▶"},
    "stop": {"ko": "생성 중지 ■", "en": "Stop ■"},
    "regenerate": {"ko": "다시 생성 ↻", "en": "Regenerate ↻"},
    "system_prompt": {"ko": "시스템 / 페르소나 프롬프트", "en": "System / persona prompt"},
    "submit": {"ko": "평가 제출 (Ctrl+Enter)", "en": "Submit ratings (Ctrl+Enter)"},
    "score_label": {"ko": "점수 1–5 (키보드 1–5, 칸 {side})", "en": "Score 1–5 (keys 1–5, side {side})"},
    "criteria": {"ko": "기준 (선택)", "en": "Criteria (optional)"},
    "crit_fluency": {"ko": "유창함", "en": "fluency"},
    "crit_faithful_to_tool": {"ko": "도구 결과에 충실", "en": "faithful to the tool result"},
    "crit_persona_consistent": {"ko": "페르소나 일관성", "en": "persona consistency"},
    "crit_tool_use_correct": {"ko": "도구 사용 정확", "en": "tool use correct"},
    "comment": {"ko": "코멘트 (선택)", "en": "Comment (optional)"},
    "progress": {"ko": "**{set}**: {total}개 중 {done}개 평가함", "en": "**{set}**: rated {done} of {total}"},
    "pick_models": {"ko": "모델을 2개 이상 고르세요.", "en": "Pick at least two models."},
    "login_required": {"ko": "로그인이 필요합니다.", "en": "Please log in."},
    "nothing_to_rate": {"ko": "평가할 답변이 아직 없습니다.", "en": "There is nothing to rate yet."},
    "score_required": {"ko": "점수를 모두 매겨 주세요: {sides}", "en": "Please score every side: {sides}"},
    "saved": {"ko": "✅ {n}개 답변의 평가를 저장했습니다.", "en": "✅ Saved ratings for {n} answers."},
    "all_rated": {"ko": "🎉 이 평가 세트의 모든 턴을 평가했습니다.", "en": "🎉 Every turn of this eval set is rated."},
    "your_message": {"ko": "메시지", "en": "Your message"},
    "send": {"ko": "보내기", "en": "Send"},
    "clear": {"ko": "새 대화", "en": "New chat"},
    "persona_from": {"ko": "시스템 프롬프트 (선택)", "en": "System prompt (optional)"},
    "message_too_long": {"ko": "메시지가 너무 깁니다 ({n}자, 최대 {max}자).", "en": "Message too long ({n} characters, max {max})."},
    "logged_in_as": {"ko": "로그인: {name}", "en": "Logged in as {name}"},
}


def t(lang: str, key: str, **fmt: object) -> str:
    """The UI string ``key`` in ``lang`` (falls back to Korean, then to the key itself)."""
    entry = STRINGS.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["ko"]
    return text.format(**fmt) if fmt else text
