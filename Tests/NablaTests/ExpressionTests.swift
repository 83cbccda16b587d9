import Nabla
import Testing

@Suite struct ExpressionTests {
    @Test func classicGradientFromText() throws {
        let e = try Expression("x^2 + y^2 + x*y")
        #expect(e.variables == ["x", "y"])
        let (v, g) = try e.valueWithGradient(at: ["x": 1, "y": 3])
        #expect(v == 13 && g == [5, 7])
        #expect(try e.hessian(at: ["x": 1, "y": 3]) == [[2, 1], [1, 2]])
    }

    @Test func precedenceAndAssociativity() throws {
        #expect(try Expression("-x^2").value(at: ["x": 3]) == -9)
        #expect(try Expression("2^3^2").value(at: [:]) == 512)
        #expect(try Expression("2**3").value(at: [:]) == 8)
        #expect(try Expression("8 / 4 / 2").value(at: [:]) == 1)
        #expect(try Expression("1 - 2 - 3").value(at: [:]) == -4)
        #expect(try Expression("(1 + 2) * 3").value(at: [:]) == 9)
        #expect(try Expression("2e-1 * 10").value(at: [:]) == 2)
        #expect(try Expression("x^-1").value(at: ["x": 4]) == 0.25)
    }

    @Test func functionsAndConstants() throws {
        let e = try Expression("sin(x) + cos(x) + tan(x) + exp(x) + log(x) + sqrt(x) + abs(-x) + tanh(x) + sigmoid(x) + pi + e")
        let x = 0.3
        let expected = Foundation_sin(x) + Foundation_cos(x) + Foundation_tan(x) + Foundation_exp(x) + Foundation_log(x) + x.squareRoot() + x
            + Foundation_tanh(x) + 1 / (1 + Foundation_exp(-x)) + Double.pi + Foundation_exp(1.0)
        #expect(Swift.abs(try e.value(at: ["x": x]) - expected) < 1e-14)
        let (_, g) = try Expression("sin(x)*y^2").valueWithGradient(at: ["x": 1, "y": 2])
        #expect(isClose(g, [Foundation_cos(1.0) * 4, Foundation_sin(1.0) * 4], tolerance: 1e-15))
    }

    @Test(arguments: [
        ("x^2 + (y", 8, "missing ')'"),
        ("x + * y", 4, "unexpected '*'"),
        ("", 0, "empty"),
        ("foo(x)", 0, "unknown function 'foo'"),
        ("x + 1)", 5, "unmatched ')'"),
        ("sin x", 4, "needs an argument"),
        ("x $ y", 2, "unexpected '$'"),
    ])
    func syntaxErrorsPointAtTheirPosition(_ text: String, _ position: Int, _ message: String) {
        do {
            _ = try Expression(text)
            Issue.record("'\(text)' parsed")
        } catch let e as ExpressionError {
            #expect(e.position == position, "\(e)")
            #expect(e.message.contains(message), "\(e)")
            #expect(e.description.contains("^"))
        } catch { Issue.record("unexpected error \(error)") }
    }

    @Test func missingVariableIsAnErrorAtItsPosition() throws {
        let e = try Expression("x + y*2")
        #expect(throws: ExpressionError.self) { try e.value(at: ["x": 1]) }
        do { _ = try e.valueWithGradient(at: ["x": 1]) } catch let err as ExpressionError {
            #expect(err.position == 4 && err.message.contains("'y'"))
        }
    }
}
