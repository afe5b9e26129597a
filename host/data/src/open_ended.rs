//! A small hand-written set of open-ended instructions without constraints, across the same
//! categories as the verifiable set: for judges that read responses (LLM judges) rather than
//! check them.

use ponder_contract::Message;
use serde_json::{Map, Value};

use crate::Instruction;

/// (category, instruction)
const OPEN_ENDED: &[(&str, &str)] = &[
    (
        "writing",
        "Write a short op-ed arguing that every town should have a public library.",
    ),
    (
        "writing",
        "Rewrite this sentence so it is clearer and friendlier: \"Per my last email, the deliverables remain outstanding.\"",
    ),
    (
        "writing",
        "Write a thank-you note to a teacher who changed the way you think.",
    ),
    (
        "writing",
        "Write a cover letter for a summer job at a bookshop.",
    ),
    (
        "creative-writing",
        "Write a short story that begins with the line \"The lights went out at exactly midnight.\"",
    ),
    (
        "creative-writing",
        "Write a poem from the point of view of an old oak tree.",
    ),
    (
        "creative-writing",
        "Invent a holiday that does not exist yet and describe how people celebrate it.",
    ),
    (
        "creative-writing",
        "Write the opening paragraph of a mystery novel set on a night train.",
    ),
    (
        "marketing",
        "Come up with five names for a cafe that also sells plants, and explain the best one.",
    ),
    (
        "marketing",
        "How should a small bakery use social media to attract new customers?",
    ),
    (
        "marketing",
        "Write the text for a flyer announcing a neighborhood clean-up day.",
    ),
    (
        "marketing",
        "What makes a product launch email effective? Give an example.",
    ),
    (
        "health",
        "What are some realistic ways to get more sleep when you have a busy schedule?",
    ),
    (
        "health",
        "How can someone who works at a desk all day stay active?",
    ),
    (
        "health",
        "Explain the difference between a cold and the flu.",
    ),
    (
        "health",
        "What should a beginner know before starting to run?",
    ),
    ("general-knowledge", "Why do we have leap years?"),
    (
        "general-knowledge",
        "How did people navigate at sea before GPS?",
    ),
    (
        "general-knowledge",
        "What is the difference between a republic and a democracy?",
    ),
    ("general-knowledge", "Why is the Mona Lisa so famous?"),
    (
        "reasoning",
        "A farmer has to cross a river with a wolf, a goat and a cabbage, and the boat holds only one of them at a time. How can he get all three across safely?",
    ),
    (
        "reasoning",
        "If all bloops are razzies and all razzies are lazzies, are all bloops lazzies? Explain.",
    ),
    (
        "reasoning",
        "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much does the ball cost?",
    ),
    (
        "reasoning",
        "Should a city spend its budget on more bus lines or on more bike lanes? Reason through both sides.",
    ),
    (
        "coding",
        "Write a Python function that returns the longest common prefix of a list of strings.",
    ),
    (
        "coding",
        "Explain the difference between a stack and a queue, with an example of when to use each.",
    ),
    (
        "coding",
        "What does this Python code print, and why? `print([x * 2 for x in range(5) if x % 2])`",
    ),
    (
        "coding",
        "How would you find out why a web page loads slowly?",
    ),
    (
        "math",
        "What is the sum of all integers from 1 to 100? Show how to compute it quickly.",
    ),
    ("math", "Explain why dividing by zero is undefined."),
    (
        "math",
        "A pizza is cut into 8 equal slices. If you eat 3 slices, what percentage of the pizza is left?",
    ),
    ("math", "Is 221 a prime number? Explain how you checked."),
    ("fact-checking", "Did Albert Einstein fail math at school?"),
    (
        "fact-checking",
        "Is it true that the Great Fire of London killed only a handful of people?",
    ),
    (
        "fact-checking",
        "Do people really swallow spiders in their sleep?",
    ),
    ("fact-checking", "Was Napoleon unusually short?"),
    (
        "recommendations",
        "I liked \"The Martian\". What should I read next?",
    ),
    (
        "recommendations",
        "What are good indoor activities for a family on a rainy weekend?",
    ),
    (
        "recommendations",
        "Which programming language should a complete beginner learn first, and why?",
    ),
    (
        "recommendations",
        "Suggest a week of simple dinners for someone who is learning to cook.",
    ),
    (
        "business-finance",
        "What is the difference between a stock and a bond?",
    ),
    (
        "business-finance",
        "How should a freelancer set aside money for taxes?",
    ),
    (
        "business-finance",
        "What questions should I ask before signing a lease for a small shop?",
    ),
    (
        "business-finance",
        "Explain inflation to someone who has never studied economics.",
    ),
    (
        "education",
        "How can a teacher keep a class of teenagers engaged in a history lesson?",
    ),
    (
        "education",
        "What is the best way to learn the vocabulary of a new language?",
    ),
    (
        "education",
        "How can parents help a child who is afraid of math?",
    ),
    (
        "education",
        "Design a one-week plan to prepare for a chemistry exam.",
    ),
    (
        "travel",
        "What should I know before traveling abroad for the first time?",
    ),
    (
        "travel",
        "Plan a three-day trip to Kyoto for someone who loves gardens and food.",
    ),
    ("travel", "How can I avoid jet lag on a long flight east?"),
    (
        "travel",
        "What are the pros and cons of traveling by night train in Europe?",
    ),
    ("science", "Why do we see lightning before we hear thunder?"),
    ("science", "How do noise-canceling headphones cancel noise?"),
    ("science", "Why does ice float on water?"),
    (
        "science",
        "What would happen to the Earth if the Moon disappeared?",
    ),
    ("cooking", "How do I keep pasta from sticking together?"),
    (
        "cooking",
        "What can I cook with rice, eggs, spinach and a lemon?",
    ),
    (
        "cooking",
        "Why does bread dough need to rise, and what happens if it doesn't?",
    ),
    (
        "cooking",
        "Give me a simple plan for cooking a dinner for six guests.",
    ),
    (
        "technology",
        "How does a password manager keep my passwords safe?",
    ),
    (
        "technology",
        "What should I check before buying a used smartphone?",
    ),
    (
        "technology",
        "Explain what a VPN does and when it is worth using one.",
    ),
    (
        "technology",
        "How do recommendation algorithms decide what videos to show me?",
    ),
];

/// The built-in open-ended instructions (64, four per category of the verifiable set), ids
/// `open-ended-001`...; no metadata.
pub fn open_ended() -> Vec<Instruction> {
    OPEN_ENDED
        .iter()
        .enumerate()
        .map(|(index, (category, prompt))| Instruction {
            id: format!("open-ended-{:03}", index + 1),
            messages: vec![Message::new("user", *prompt)],
            category: Some(category.to_string()),
            reference: None,
            metadata: Value::Object(Map::new()),
        })
        .collect()
}
